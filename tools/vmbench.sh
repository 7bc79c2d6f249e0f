#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# What the sensor costs on the kernels of `make vmtest`, where it chooses
# other hook variants than on the development host (BPF LSM for rename_target
# and path_*, tp_btf for exec, fork and exit): `ebpfsensor diagnostic overhead
# --json` in a guest of each kernel (tools/vm/run.sh), or on this machine for
# "host"; the report kept per kernel and one Markdown table of the ratios,
# each against the same run's "nothing" (emulated guests: compare ratios, not
# nanoseconds across kernels).
#
# Usage: tools/vmbench.sh [KERNEL...]  (default: trixie-6.12-amd64 bookworm-6.1-amd64)
#   KERNEL            any of tools/vmtest.sh's amd64 kernels, or host
#   VMBENCH_DURATION  seconds of loops, over every mode and round (default 60: eleven
#                     rounds, about 2.5 min a guest, 4.5-5.5 with the profile)
#   VMBENCH_KINDS     the sensor's kinds, comma-separated (default: all)
#   VMBENCH_SMP       guest vCPUs (default 1, see below)
#   VMBENCH_TCG       single | multi: run.sh's --tcg (default: run.sh's, single)
#   VMBENCH_PROFILE   openat+close per configuration for tests/bench/openprofile.py
#                     after the command, in the same guest: the open programs' own
#                     run time (bpf_stats), which the consumer does not touch
#                     (default 5000; 0: not run)
#   VMBENCH_TIMEOUT   seconds per guest (default 1800)
#   VMBENCH_TARGET    the verdict's bound for a reported openat+close, % (default 15)
#   VMBENCH_OUT       where everything goes (default build/vmbench)
# Writes OUT/KERNEL.json (the report), OUT/KERNEL.log (the guest's console)
# and OUT/table.md (printed at the end, for docs/benchmarks.md), and with the
# profile OUT/KERNEL.profile.txt.
# Exit status: 0 if every kernel gave a report, 1 otherwise.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || kernels=(trixie-6.12-amd64 bookworm-6.1-amd64)
duration=${VMBENCH_DURATION:-60}
timeout=${VMBENCH_TIMEOUT:-1800}
# One vCPU: the command counts the CPU time of its loop process, and a
# guest's CPU time is host time while its vCPU is scheduled. With two vCPUs
# on one TCG thread (run.sh's default for amd64), the time qemu spends
# running the other vCPU (the sensor's consumer draining the rings) is
# charged to the loop as well, which inflates the sensor's mode only. With
# one vCPU the consumer and the loop share it and each is charged its own.
smp=${VMBENCH_SMP:-1}
tcg=()
[ -z "${VMBENCH_TCG:-}" ] || tcg=(--tcg "$VMBENCH_TCG")
profile=${VMBENCH_PROFILE:-5000}
[[ $profile =~ ^[0-9]+$ ]] || { echo "vmbench: VMBENCH_PROFILE must be a number of operations, not '$profile'" >&2; exit 2; }
out=${VMBENCH_OUT:-build/vmbench}
cmd=(python3 -m ebpfsensor diagnostic overhead --duration "$duration" --json)
[ -z "${VMBENCH_KINDS:-}" ] || cmd+=(--kinds "$VMBENCH_KINDS")
mkdir -p "$out"

# the report is the command's one line of JSON, between two markers on the
# guest's console (the guest's root is a throw-away overlay), and the
# profile's table after it between two others
# shellcheck disable=SC2016 # expanded by the guest's sh, the command as "$@"
guest_sh='uname -r; echo "LSM $(cat /sys/kernel/security/lsm 2>/dev/null || echo ?)"
echo VMBENCH-JSON-BEGIN; "$@"; rc=$?; echo VMBENCH-JSON-END
if [ "$rc" = 0 ] && [ "$VMBENCH_PROFILE" != 0 ]; then
  echo VMBENCH-PROFILE-BEGIN; python3 -m tests.bench.openprofile --ops "$VMBENCH_PROFILE" --reps 3; rc=$?; echo VMBENCH-PROFILE-END
fi
exit $rc'

failed=0
args=()
for k in "${kernels[@]}"; do
  log=$out/$k.log json=$out/$k.json
  rm -f "$json"
  start=$(date +%s)
  if [ "$k" = host ]; then
    env PYTHONPATH="$PWD/python" VMBENCH_PROFILE="$profile" sh -c "$guest_sh" sh "${cmd[@]}" > "$log" 2>&1 && rc=0 || rc=$?
  else
    bash tools/vm/run.sh --kernel "$k" --smp "$smp" "${tcg[@]}" --timeout "$timeout" --env PYTHONPATH="$PWD/python" \
      --env VMBENCH_PROFILE="$profile" -- sh -c "$guest_sh" sh "${cmd[@]}" > "$log" 2>&1 && rc=0 || rc=$?
  fi
  tr -d '\r' < "$log" | sed -n '/^VMBENCH-JSON-BEGIN$/,/^VMBENCH-JSON-END$/p' | sed '1d;$d' > "$json.tmp"
  rm -f "$out/$k.profile.txt"
  if [ "$profile" != 0 ]; then
    # (the sensors' warnings on stderr share the console: the table's lines only)
    tr -d '\r' < "$log" | sed -n '/^VMBENCH-PROFILE-BEGIN$/,/^VMBENCH-PROFILE-END$/p' |
      grep -E '^(ns per program run|  )' > "$out/$k.profile.txt" || true
  fi
  if [ "$rc" = 0 ] && python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$json.tmp" 2> /dev/null; then
    mv "$json.tmp" "$json"
    args+=("$k=$json")
    echo "vmbench: $k: report in $json ($(( $(date +%s) - start )) s)"
  else
    rm -f "$json.tmp"
    failed=1
    echo "vmbench: $k: no report (exit $rc, $(( $(date +%s) - start )) s); the log's end:" >&2
    tail -n 15 "$log" | tr -d '\r' | sed 's/^/  | /' >&2
  fi
done
if [ ${#args[@]} -gt 0 ]; then
  python3 tools/vmbench-table.py --target "${VMBENCH_TARGET:-15}" "${args[@]}" > "$out/table.md"
  echo
  cat "$out/table.md"
  for a in "${args[@]}"; do
    k=${a%%=*}
    [ ! -s "$out/$k.profile.txt" ] || { echo; echo "$k, the open programs' run time (bpf_stats):"; cat "$out/$k.profile.txt"; }
  done
  echo "vmbench: reports and logs in $out/, the table in $out/table.md"
fi
exit "$failed"
