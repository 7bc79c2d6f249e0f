#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Check a built wheel without installing it: what it contains, what the
# extension links against and which glibc symbol versions it needs, and that
# the BPF objects are this arch's, stripped of DWARF, with BTF, and listed in
# the manifest. Any violation fails (exit 1) saying what is wrong.
#
# Usage: tools/check-wheel.sh <wheel> <x86|arm64> <max glibc, e.g. 2.24>
set -euo pipefail

die() { echo "check-wheel: error: $*" >&2; exit 1; }
[ $# -eq 3 ] || die "usage: $0 <wheel> <x86|arm64> <max glibc>"
whl=$1 arch=$2 max_glibc=$3
case "$arch" in
  # mine/theirs: a kernel struct in only this arch's thread_struct, and in only
  # the other's: the BTF of an object compiled against the wrong vmlinux.h shows it
  x86) machine='Advanced Micro Devices X86-64' other=arm64 mine=fpu theirs=cpu_context ;;
  arm64) machine='AArch64' other=x86 mine=cpu_context theirs=fpu ;;
  *) die "unknown arch $arch" ;;
esac
LLVM_READELF=${LLVM_READELF:-llvm-readelf}
BPFTOOL=${BPFTOOL:-bpftool}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unzip -q "$whl" -d "$tmp"
pkg=$tmp/ebpfsensor
so=$pkg/_libbpf.abi3.so
[ -f "$so" ] || die "no ebpfsensor/_libbpf.abi3.so in $whl"

# the extension: right machine, only glibc, nothing new, libbpf kept private
m=$(readelf -h "$so" | sed -n 's/^ *Machine: *//p')
[ "$m" = "$machine" ] || die "extension machine is '$m', expected '$machine'"
needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
for lib in $needed; do
  case "$lib" in libc.so.6|ld-linux-*.so.*) ;; *) die "extension needs $lib (only glibc allowed): $needed" ;; esac
done
! readelf -d "$so" | grep -Eq 'RPATH|RUNPATH' || die "extension has an RPATH/RUNPATH"
newest=$(readelf --dyn-syms -W "$so" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
if [ "$(printf '%s\n%s\n' "$newest" "$max_glibc" | sort -V | tail -n1)" != "$max_glibc" ]; then
  readelf --dyn-syms -W "$so" | grep -E "GLIBC_$newest" >&2
  die "extension needs GLIBC_$newest, newer than $max_glibc"
fi
exported=$(readelf --dyn-syms -W "$so" | awk '$7 != "UND" && $5 == "GLOBAL" && $8 ~ /^(bpf_|libbpf_|btf_|elf_|gelf_|ring_buffer)/' | wc -l)
[ "$exported" = 0 ] || die "extension exports $exported libbpf/libelf symbols"
! readelf -S -W "$so" | grep -q '\.debug_' || die "extension carries debug info"

# the BPF objects: this arch only, stripped, BTF kept, listed in the manifest
[ -d "$pkg/bpf/$arch" ] || die "no ebpfsensor/bpf/$arch/"
[ ! -e "$pkg/bpf/$other" ] || die "wheel also ships ebpfsensor/bpf/$other/"
[ "$(ls "$pkg/bpf")" = "$arch" ] || die "unexpected entries in ebpfsensor/bpf/: $(ls "$pkg/bpf" | tr '\n' ' ')"
objs=$(cd "$pkg/bpf/$arch" && ls ./*.bpf.o | sed 's|^\./||')
[ -n "$objs" ] || die "no .bpf.o in ebpfsensor/bpf/$arch/"
(cd "$pkg/bpf/$arch" && sha256sum --quiet -c MANIFEST) || die "MANIFEST does not match the objects"
[ "$(awk '{ print $2 }' "$pkg/bpf/$arch/MANIFEST" | sort)" = "$(echo "$objs" | sort)" ] ||
  die "MANIFEST does not list exactly the shipped objects"
for o in $objs; do
  f=$pkg/bpf/$arch/$o
  secs=$($LLVM_READELF -S -W "$f")
  grep -q ' \.BTF ' <<<"$secs" || die "$o has no .BTF"
  grep -q ' \.BTF\.ext ' <<<"$secs" || die "$o has no .BTF.ext"
  ! grep -q ' \.debug_' <<<"$secs" || die "$o still carries DWARF (.debug_*)"
  [ "$($LLVM_READELF -h "$f" | sed -n 's/^ *Machine: *//p')" = "EM_BPF" ] || die "$o is not a BPF object"
  btf=$($BPFTOOL btf dump file "$f")
  # an object that reads no task (floor.bpf.o's empty programs) carries
  # neither architecture's types; one that does must carry its own
  if grep -q "STRUCT '$theirs'" <<<"$btf" ||
    { grep -q "STRUCT 'task_struct'" <<<"$btf" && ! grep -q "STRUCT '$mine'" <<<"$btf"; }; then
    die "$o was not compiled against the $arch vmlinux.h (BTF lacks struct $mine or has struct $theirs)"
  fi
done

tag=${whl##*/}; tag=${tag%.whl}; tag=${tag#*-*-}
echo "check-wheel: ${whl##*/}: $tag; extension $machine, NEEDED $needed, newest GLIBC_$newest; objects $(echo $objs) ($arch kernel types, BTF kept, no DWARF, manifest ok)"
