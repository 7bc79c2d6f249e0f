#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The stages of `make fuzz`, which builds what they run and passes the
# settings in the environment (FUZZ, FUZZ_SECONDS, FUZZ_PY_SECONDS,
# FUZZ_MAX_LEN, FUZZ_ARGS, SAN_EXT, SAN_TESTS, PYTHON, PYTEST_ARGS). A stage
# that fails does not stop the next; the exit status is 1 if any failed.
set -u

root=$(pwd)
failed=()
stage_failed() {
	failed+=("$1")
	echo "  FAILED  $1"
}

mkdir -p "$FUZZ/crashes"

# the package with the ASan/UBSan extension in it, loaded after gcc's libasan
rm -rf "$FUZZ/asan" && mkdir -p "$FUZZ/asan"
cp -r python/ebpfsensor "$FUZZ/asan/" && cp "$SAN_EXT" "$FUZZ/asan/ebpfsensor/"
san=(env LD_PRELOAD="$(gcc -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0
	PYTHONPATH="$root/$FUZZ/asan:$root")

echo "  TEST    $SAN_TESTS on the ASan/UBSan extension"
# shellcheck disable=SC2086 # word lists
"${san[@]}" "$PYTHON" -m pytest -q -p no:cacheprovider $SAN_TESTS ${PYTEST_ARGS:-} ||
	stage_failed "unit tests on the ASan/UBSan extension"

"${san[@]}" "$PYTHON" tests/fuzz/ring_fuzz.py --seconds "$FUZZ_PY_SECONDS" --out "$FUZZ/crashes" ||
	stage_failed "ring_fuzz.py (findings in $FUZZ/crashes/py-*)"

PYTHONPATH="$root/python:$root" "$PYTHON" tests/fuzz/gen_corpus.py "$FUZZ/corpus"
echo "  FUZZ    $FUZZ/transcode_fuzz for $FUZZ_SECONDS s, log in $FUZZ/fuzz.log"
# with -fork=N -ignore_crashes=1 libFuzzer goes on past a crash and exits 0:
# the files it leaves tell
before=$(find "$FUZZ/crashes" -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' | wc -l)
# shellcheck disable=SC2086 # FUZZ_ARGS: libFuzzer options
(cd "$FUZZ" && ./transcode_fuzz -max_total_time="$FUZZ_SECONDS" -max_len="$FUZZ_MAX_LEN" -use_value_profile=1 \
	-print_final_stats=1 -artifact_prefix=crashes/ ${FUZZ_ARGS:-} corpus >fuzz.log 2>&1)
rc=$?
after=$(find "$FUZZ/crashes" -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' | wc -l)
grep -E '^#[0-9]+' "$FUZZ/fuzz.log" | tail -n 1
grep -E '^stat::' "$FUZZ/fuzz.log"
if [ $rc -ne 0 ]; then
	sed -n '/^invariant failed/p;/^==[0-9]*==ERROR/,/^SUMMARY/p' "$FUZZ/fuzz.log" | grep -v 'in fuzzer::' | head -n 40
	grep -E '^(Test unit written|artifact_prefix)' "$FUZZ/fuzz.log"
	stage_failed "transcode_fuzz (input in $FUZZ/crashes/)"
elif [ "$after" -gt "$before" ]; then
	stage_failed "transcode_fuzz: $((after - before)) new inputs in $FUZZ/crashes/"
fi

# findings kept in tests/fuzz/crashes/: each must pass once its bug is fixed
for f in tests/fuzz/crashes/crash-*; do
	[ -e "$f" ] || continue
	echo "  REPLAY  $f"
	"$FUZZ/transcode_fuzz" "$f" >"$FUZZ/replay.log" 2>&1 ||
		{ grep -E '^SUMMARY' "$FUZZ/replay.log"; stage_failed "replay of $f"; }
done
for f in tests/fuzz/crashes/*.py; do
	[ -e "$f" ] || continue
	echo "  REPLAY  $f"
	PYTHONPATH="$root/python:$root" "$PYTHON" "$f" || stage_failed "replay of $f"
done

if [ ${#failed[@]} -ne 0 ]; then
	echo "  fuzz: ${#failed[@]} failed: $(IFS=';'; echo "${failed[*]}")"
	exit 1
fi
echo "  OK      fuzz"
