#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Prove a wheel where it runs: install it into a minimal Debian root (python3
# only: no libbpf1, no libelf1, no compiler, no kernel headers) and run
# tests/kernel/test_smoke.py there against the real kernel.
#
#   x86_64:  chroot into the root on this machine, /proc and /sys mounted.
#   aarch64: boot Debian's arm64 kernel under qemu-system-aarch64 (TCG) with
#            the root shared over 9p (tools/vm/run.sh) and run it inside;
#            x86_64 does the same in an amd64 kernel when VM_KERNEL is set.
#
# Usage: tools/wheel-test.sh <x86_64|aarch64> <wheel>
#
# The cached root (build/roots/bookworm-<arch>, made by tools/mkroot.sh) is
# never modified: the wheel and its dependencies go into an overlay on top of
# it (build/wheel-test/<arch>/), mounted for the run and unmounted afterwards,
# also on failure or interruption.
#
# The runtime dependencies (cffi, msgspec, pyelftools) and pytest come from
# PyPI through the host's pip, with --platform set to the root's glibc and
# --python-version to its Python: the guest has no network and pip under
# emulation would be slow, and pip still refuses a wheel whose tags that
# machine would not accept.
#
# Environment: VM_KERNEL boots that kernel (tools/vm/run.sh --kernel; default
# for aarch64 trixie-6.12-arm64; set for x86_64, e.g. bullseye-5.10-amd64, it
# replaces the chroot on the running kernel); VM_TIMEOUT (seconds, default 600);
# VM_RUNNER (default tools/vm/run.sh, with its init.sh next to it).
set -euo pipefail

die() { echo "wheel-test: error: $*" >&2; exit 1; }
log() { echo "wheel-test: $*" >&2; }

[ $# -eq 2 ] || die "usage: $0 <x86_64|aarch64> <wheel>"
arch=$1 whl=$(readlink -f "$2")
case "$arch" in
  x86_64) debarch=amd64 ;;
  aarch64) debarch=arm64 ;;
  *) die "unsupported arch $arch" ;;
esac
[ -f "$whl" ] || die "no wheel $2 (make wheel ARCH=$arch)"
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, mounts, chroot, BPF)"
start=$SECONDS

repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$repo"
base=$repo/build/roots/bookworm-$debarch
work=$repo/build/wheel-test/$debarch
root=$work/root
PYTHON=${PYTHON:-python3}

bash tools/mkroot.sh "$debarch" "$base"

cleanup() {
  local rc=$?
  if mountpoint -q "$root"; then
    umount -R "$root" || { sleep 1; umount -R -l "$root"; }
  fi
  rm -rf "$work/upper" "$work/work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if mountpoint -q "$root"; then umount -R "$root"; fi
rm -rf "$work/upper" "$work/work"
mkdir -p "$work/upper" "$work/work" "$root"
mount -t overlay overlay -o "lowerdir=$base,upperdir=$work/upper,workdir=$work/work" "$root"

# what the target machine must not have
found=$(find "$root" -xdev \( -name 'libbpf.so*' -o -name 'libelf.so*' -o -name 'libelf-*.so' -o -name 'libz.a' \
  -o -path '*/usr/include/linux' -o -path '*/bin/*gcc*' -o -path '*/bin/cc' -o -path '*/bin/clang*' \) -print | sed "s|^$root||")
[ -z "$found" ] || die "the test root has what the wheel must not need: $found"

glibc=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Version}' libc6 | sed 's/^\([0-9]*\.[0-9]*\).*/\1/')
py=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Version}' python3 | sed 's/^\([0-9]*\.[0-9]*\).*/\1/')
[ -n "$glibc" ] && [ -n "$py" ] || die "cannot read libc6/python3 versions from $base"
site=/usr/local/lib/python$py/dist-packages
# the platform tags the root's own pip would accept: every manylinux_2_N up
# to its glibc, and the legacy aliases (pip does not expand --platform itself)
plats=()
for ((n = ${glibc#*.}; n >= 5; n--)); do plats+=(--platform "manylinux_2_${n}_$arch"); done
plats+=(--platform "manylinux2014_$arch")
[ "$arch" != x86_64 ] || plats+=(--platform manylinux2010_x86_64 --platform manylinux1_x86_64)
log "installing ${whl##*/} + pytest into the root's $site (Python $py, glibc $glibc, $debarch)"
"$PYTHON" -m pip install -q --root-user-action=ignore --disable-pip-version-check \
  --target "$root$site" "${plats[@]}" --python-version "$py" \
  --implementation cp --only-binary=:all: "$whl" pytest > "$work/pip.log" 2>&1 ||
  { cat "$work/pip.log" >&2; die "pip could not install the wheel for $debarch"; }

# the smoke test and the test tiers' conftest (root/bpf markers, fd leak
# check, EBPFSENSOR_REQUIRE_BPF), nothing else from the source tree
smoke=/opt/ebpfsensor-smoke
mkdir -p "$root$smoke"
cp tests/conftest.py tests/kernel/test_smoke.py "$root$smoke/"
cat > "$root$smoke/pytest.ini" <<'EOF'
[pytest]
addopts = --strict-markers -ra -v -p no:cacheprovider
filterwarnings = error
markers =
    bpf: loads BPF programs into the kernel (needs root or CAP_BPF)
    root: needs root for something other than BPF (netlink, audit, mounts)
EOF
envs=(EBPFSENSOR_REQUIRE_BPF=1 EBPFSENSOR_SMOKE_INSTALLED=1)
cmd='echo "wheel-test: kernel $(uname -r) $(uname -m), $(python3 -V), $(getconf GNU_LIBC_VERSION)"
cd '"$smoke"' && python3 -m pytest test_smoke.py && python3 -m ebpfsensor hooks'

t0=$SECONDS
mode=$arch
[ -z "${VM_KERNEL:-}" ] || mode=vm
case "$mode" in
  x86_64)
    [ "$(uname -m)" = x86_64 ] || die "the x86_64 test runs chrooted on an x86_64 machine"
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    log "running the smoke test chrooted into $root (host kernel $(uname -r))"
    # paths from the kernel start at the mount namespace's root, not the chroot's
    chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
      "${envs[@]}" EBPFSENSOR_SMOKE_ROOT="$root" /bin/sh -c "$cmd"
    ;;
  aarch64|vm)
    runner=${VM_RUNNER:-tools/vm/run.sh}
    [ -x "$runner" ] || die "$runner is missing"
    # where the guest's command runs: an init that chroots into its overlay
    # at /mnt/root leaves that prefix on every path the kernel reports; one
    # that switch_roots (later versions of tools/vm/init.sh) leaves none
    prefix=/mnt/root
    ! grep -q '^[^#]*switch_root' "$(dirname "$runner")/init.sh" || prefix=''
    kernel=${VM_KERNEL:-trixie-6.12-arm64}
    [[ $kernel == *-$debarch ]] || die "VM_KERNEL=$kernel is not an $debarch kernel"
    log "booting $kernel under qemu (TCG) with $root as its root"
    vmenv=()
    for e in "${envs[@]}"; do vmenv+=(--env "$e"); done
    bash "$runner" --kernel "$kernel" --root "$root" --timeout "${VM_TIMEOUT:-600}" \
      "${vmenv[@]}" --env LANG=C.UTF-8 --env EBPFSENSOR_SMOKE_ROOT="$prefix" -- /bin/sh -c "$cmd"
    ;;
esac
log "passed: ${whl##*/} on $arch (test $((SECONDS - t0)) s, total $((SECONDS - start)) s)"
