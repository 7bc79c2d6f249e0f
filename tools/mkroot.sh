#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# A minimal Debian bookworm root filesystem with python3 and nothing else of
# ours (no libbpf1, no libelf1, no compiler): the machine a wheel must work on.
# Built once with debootstrap and cached; a finished root has .ebpfsensor-root.
#
# Usage: tools/mkroot.sh <amd64|arm64> <dir>
# A foreign arch (arm64 on x86_64) runs debootstrap's second stage through
# qemu-user-static's binfmt handler; binfmt_misc is mounted and the handler
# enabled only for the duration of the build, and put back as it was.
set -euo pipefail

die() { echo "mkroot: error: $*" >&2; exit 1; }
log() { echo "mkroot: $*" >&2; }

[ $# -eq 2 ] || die "usage: $0 <amd64|arm64> <dir>"
arch=$1 dir=$2
suite=bookworm
case "$arch" in amd64|arm64) ;; *) die "unsupported arch $arch" ;; esac
[ -f "$dir/.ebpfsensor-root" ] && exit 0
[ "$(id -u)" = 0 ] || die "debootstrap needs root"

root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
. "$root/tools/debian-archive.sh"
entry=$(debian_archive)
[ -n "$entry" ] || die "no Debian archive found in the apt configuration"
uri=${entry%%$'\t'*} keyring=${entry#*$'\t'}

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
host=$(dpkg --print-architecture)
if [ "$arch" != "$host" ]; then
  command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
  command -v update-binfmts >/dev/null || need+=(binfmt-support)
fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

binfmt=/proc/sys/fs/binfmt_misc
mounted_binfmt='' enabled_qemu=''
restore() {
  [ -z "$enabled_qemu" ] || update-binfmts --disable qemu-aarch64 >/dev/null 2>&1 || true
  [ -z "$mounted_binfmt" ] || umount "$binfmt" || true
}
trap restore EXIT
if [ "$arch" != "$host" ]; then
  if ! mountpoint -q "$binfmt"; then
    mount -t binfmt_misc binfmt_misc "$binfmt"
    mounted_binfmt=1
  fi
  if [ "$(head -n1 "$binfmt/qemu-aarch64" 2>/dev/null)" != enabled ]; then
    update-binfmts --enable qemu-aarch64 >/dev/null
    enabled_qemu=1
  fi
  # the F flag makes the kernel open the interpreter now: no copy in the root needed
  grep -q '^flags:.*F' "$binfmt/qemu-aarch64" || die "qemu-aarch64 binfmt handler lacks the F flag"
fi

log "debootstrap $suite $arch from $uri into $dir"
rm -rf "$dir"
mkdir -p "$dir"
start=$SECONDS
opts=(--variant=minbase --include=python3 --arch="$arch")
[ -z "$keyring" ] || opts+=(--keyring="$keyring")
debootstrap "${opts[@]}" "$suite" "$dir" "$uri" > "$dir.log" 2>&1 ||
  { tail -n 30 "$dir.log" >&2; die "debootstrap failed (log: $dir.log)"; }
rm -rf "$dir/var/cache/apt/archives/"*.deb
# what the wheel must not find there
for pkg in libbpf1 libelf1 gcc; do
  ! chroot "$dir" dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q installed ||
    die "$pkg is installed in $dir; the root must not have it"
done
echo "debian $suite $arch, $(date -u +%F)" > "$dir/.ebpfsensor-root"
log "done in $((SECONDS - start)) s: $(du -sh "$dir" | cut -f1)"
