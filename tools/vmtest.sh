#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The kernel test tier on real Debian kernels under qemu (tools/vm/run.sh),
# then on the host kernel; one line per kernel: passed / failed / skipped and
# the hook variants the sensor chose there.
#
# Usage: tools/vmtest.sh [KERNEL...]   (default: the x86 matrix)
#   VMTEST_TESTS   pytest selection (default: tests/kernel)
#   VMTEST_TIMEOUT seconds per guest (default 1500)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || kernels=(bullseye-5.10-amd64 bookworm-6.1-amd64 trixie-6.12-amd64 host)
tests=${VMTEST_TESTS:-tests/kernel}
timeout=${VMTEST_TIMEOUT:-1500}
out=build/vmtest
mkdir -p "$out"

# the hook variants the sensor picks, as "hook=variant" for the lifecycle
# and one syscall hook of each object
hooks_cmd='python3 -c "import ebpfsensor
with ebpfsensor.Sensor(log_file=None) as s:
    h = s.hooks()
    print(\"HOOKS\", \" \".join(f\"{k}={h[k].variant}\" for k in (\"exec\", \"fork\", \"exit\", \"file_openat_exit\", \"connect_exit\", \"setuid_exit\") if k in h))
"'
cmd="$hooks_cmd; python3 -m pytest -q -p no:cacheprovider $tests"

summary=()
for k in "${kernels[@]}"; do
  log=$out/$k.log
  start=$(date +%s)
  if [ "$k" = host ]; then
    env PYTHONPATH="$PWD/python" EBPFSENSOR_REQUIRE_BPF=1 bash -c "$cmd" > "$log" 2>&1 && rc=0 || rc=$?
    release=$(uname -r)
  else
    bash tools/vm/run.sh --kernel "$k" --timeout "$timeout" --env PYTHONPATH="$PWD/python" \
      --env EBPFSENSOR_REQUIRE_BPF=1 -- sh -c "uname -r; $cmd" > "$log" 2>&1 && rc=0 || rc=$?
    release=$(grep -m1 -E '^[0-9]+\.[0-9]+\.[0-9]+' "$log" | tr -d '\r' || echo "?")
  fi
  secs=$(( $(date +%s) - start ))
  result=$(grep -E '(passed|failed|error)' "$log" | grep -E ' in [0-9.]+s' | tail -1 | tr -d '=\r' | sed 's/^ *//')
  hooks=$(grep -m1 '^HOOKS' "$log" | cut -d' ' -f2- | tr -d '\r')
  line=$(printf '%-22s %-28s rc=%-3s %4ss  %s | %s' "$k" "$release" "$rc" "$secs" "${result:-no result}" "${hooks:-no hooks}")
  echo "$line"
  summary+=("$line")
done
printf '%s\n' "${summary[@]}" > "$out/summary.txt"
echo "vmtest: logs in $out/, summary in $out/summary.txt"
