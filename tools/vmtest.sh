#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The kernel test tier on real Debian kernels and kernels built from source
# under qemu (tools/vm/run.sh), then on the host kernel; one line per kernel:
# passed / failed / skipped, the time, the hook variants the sensor chose there
# and the active LSMs.
#
# Usage: tools/vmtest.sh [KERNEL...]   (default: the Debian kernels below and the host)
#   KERNEL         bullseye-5.10-amd64 | bookworm-6.1-amd64 | trixie-6.12-amd64 | host
#                  | trixie-6.12-arm64 (the aarch64 wheel, `make wheel ARCH=aarch64`,
#                  installed into a minimal bookworm arm64 root: tools/vm/wheel-root.sh)
#                  | linux-5.4.286 | linux-4.19.72 (built from source, with their BTF
#                  as an external file: run.sh finds them, see VMTEST_KERNELS_DIR there)
#   VMTEST_TESTS   pytest selection (default: tests/kernel; arm64 runs the
#                  copy of tests/ in its root)
#   VMTEST_TIMEOUT seconds per guest (default 1500)
#   VMTEST_TCG     single | multi: qemu's TCG threading for every guest (default:
#                  run.sh's, single for amd64 and multi for arm64; see its --tcg)
#   VMTEST_SUMMARY the summary file (default build/vmtest/summary.txt); concurrent
#                  runs give each its own, and run.sh's VM_GUEST_LOCK
# Exit status: 0 if every kernel's run passed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || kernels=(bullseye-5.10-amd64 bookworm-6.1-amd64 trixie-6.12-amd64 trixie-6.12-arm64 host)
tests=${VMTEST_TESTS:-tests/kernel}
timeout=${VMTEST_TIMEOUT:-1500}
tcg=()
[ -z "${VMTEST_TCG:-}" ] || tcg=(--tcg "$VMTEST_TCG")
out=build/vmtest
mkdir -p "$out"

# tests/kernel/conftest.py prints every hook's variant ("HOOKS hook=variant
# ...", from the first module's sensor); the summary shows the lifecycle and
# one syscall hook of each object
shown_hooks='exec fork exit file_openat_exit rename_target connect_exit setuid_exit'
lsm_cmd='echo "LSM $(cat /sys/kernel/security/lsm 2>/dev/null || echo ?)"'
# the kernel tier uses neither hypothesis nor pytest-benchmark: without their
# plugins pytest starts in a guest in 7 s instead of 23 s
pytest_cmd='python3 -m pytest -q -p no:cacheprovider -p no:hypothesispytest -p no:benchmark --durations=15'
# the real auditd beside the audit provider runs on the host tier: a guest has
# no init to give it what it expects (and the arm64 root has no auditd)
# the overhead command times loops against each other: meaningful on real
# hardware (the host tier), minutes and noise under emulation
guest_pytest_cmd="$pytest_cmd --deselect tests/kernel/test_audit_provider.py::test_beside_auditd --ignore=tests/kernel/test_diagnostic_overhead.py"

wheel_root=''
cleanup() { [ -z "$wheel_root" ] || bash tools/vm/wheel-root.sh down "$wheel_root"; }
trap cleanup EXIT

summary=()
failed=0
for k in "${kernels[@]}"; do
  log=$out/$k.log
  start=$(date +%s)
  if [ "$k" = host ]; then
    env PYTHONPATH="$PWD/python" EBPFSENSOR_REQUIRE_BPF=1 EBPFSENSOR_REPORT_HOOKS=1 bash -c "$lsm_cmd; $pytest_cmd $tests" > "$log" 2>&1 && rc=0 || rc=$?
    release=$(uname -r)
  elif [[ $k == *-arm64 ]]; then
    # the wheel as a user installs it, in an arm64 root; tests from a copy
    {
      make -s wheel ARCH=aarch64 &&
        wheel_root=$PWD/build/vmtest/root-arm64 &&
        bash tools/vm/wheel-root.sh up arm64 "$(ls -t dist/ebpfsensor-*-manylinux*_aarch64.whl | head -n1)" "$wheel_root" &&
        bash tools/vm/run.sh --kernel "$k" "${tcg[@]}" --root "$wheel_root/root" --timeout "$timeout" \
          --env EBPFSENSOR_REQUIRE_BPF=1 --env EBPFSENSOR_REPORT_HOOKS=1 --env LANG=C.UTF-8 -- \
          sh -c "uname -r; cd /opt/ebpfsensor-tests && $lsm_cmd; $guest_pytest_cmd $tests"
    } > "$log" 2>&1 && rc=0 || rc=$?
    cleanup; wheel_root=''
    release=$(grep -m1 -E '^[0-9]+\.[0-9]+\.[0-9]+' "$log" | tr -d '\r' || echo "?")
  else
    bash tools/vm/run.sh --kernel "$k" "${tcg[@]}" --timeout "$timeout" --env PYTHONPATH="$PWD/python" \
      --env EBPFSENSOR_REQUIRE_BPF=1 --env EBPFSENSOR_REPORT_HOOKS=1 -- sh -c "uname -r; $lsm_cmd; $guest_pytest_cmd $tests" > "$log" 2>&1 && rc=0 || rc=$?
    release=$(grep -m1 -E '^[0-9]+\.[0-9]+\.[0-9]+' "$log" | tr -d '\r' || echo "?")
  fi
  secs=$(( $(date +%s) - start ))
  result=$(grep -E '(passed|failed|error)' "$log" | grep -E ' in [0-9.]+s' | tail -1 | tr -d '=\r' | sed 's/^ *//')
  # (no HOOKS line where eBPF did not start: the sensor fell back)
  all=" $(grep -m1 '^HOOKS' "$log" | cut -d' ' -f2- | tr -d '\r' || true) " hooks=''
  for h in $shown_hooks; do
    [[ ! $all =~ \ $h=([a-z_]+)\  ]] || hooks+="${hooks:+ }$h=${BASH_REMATCH[1]}"
  done
  lsm=$(grep -m1 '^LSM' "$log" | cut -d' ' -f2- | tr -d '\r' || true)
  [ -n "$result" ] || [ "$rc" != 0 ] || rc=1  # no summary line: not a pass
  [ "$rc" = 0 ] || failed=1
  line=$(printf '%-22s %-28s rc=%-3s %4ss  %s | %s | lsm=%s' "$k" "$release" "$rc" "$secs" "${result:-no result}" "${hooks:-no hooks}" "${lsm:-?}")
  echo "$line"
  summary+=("$line")
done
summary_file=${VMTEST_SUMMARY:-$out/summary.txt}
printf '%s\n' "${summary[@]}" > "$summary_file"
echo "vmtest: logs in $out/, summary in $summary_file"
exit "$failed"
