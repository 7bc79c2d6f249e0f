#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Build position-independent STATIC libbpf, libelf and zlib for linking into
# the cffi extension. Debian's own .a files are not built with -fPIC, so they
# cannot go into a shared object; we rebuild them from Debian source packages.
#
# Usage: tools/build-deps.sh <x86|arm64>
# Output: build/deps/<arch>/{lib/libbpf.a,lib/libelf.a,lib/libz.a,include/}
set -euo pipefail

# Pinned upstream versions and the sha256 of the orig tarballs as published on
# the Debian mirror (apt checks the .dsc against the signed Release; this pin
# additionally catches a silently changed upstream tarball).
LIBBPF_VER=1.5.0
ELFUTILS_VER=0.188
ZLIB_VER=1.2.13
LIBBPF_TAR=libbpf_${LIBBPF_VER}.orig.tar.gz
ELFUTILS_TAR=elfutils_${ELFUTILS_VER}.orig.tar.bz2
ZLIB_TAR=zlib_${ZLIB_VER}.dfsg.orig.tar.bz2
declare -A SHA256=(
  [$LIBBPF_TAR]=53492aff6dd47e4da04ef5e672d753b9743848bdb38e9d90eafbe190b7983c44
  [$ELFUTILS_TAR]=fb8b0e8d0802005b9a309c60c1d8de32dd2951b56f0c3a3cb56d21ce01595dff
  [$ZLIB_TAR]=71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1
)
# Which suite each source package is taken from (libbpf 1.5.0 is only in trixie).
APT_SOURCES=(libbpf/trixie elfutils/bookworm zlib/bookworm)

die() { echo "build-deps: error: $*" >&2; exit 1; }
log() { echo "build-deps: $*" >&2; }

arch=${1:-}
case "$arch" in
  x86)   host=x86_64-linux-gnu;  machine='Advanced Micro Devices X86-64' ;;
  arm64) host=aarch64-linux-gnu; machine='AArch64' ;;
  *) die "usage: $0 <x86|arm64>" ;;
esac
build_triplet=$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
if [ "$host" = "$build_triplet" ]; then cross=; else cross=$host-; fi

# Everything is relative to the repository root, wherever we are called from.
cd "$(dirname "$(readlink -f "$0")")/.."
root=$PWD
deps=$root/build/deps
out=$deps/$arch
src=$deps/src
stamp=$out/.stamp
stamp_text="libbpf=$LIBBPF_VER elfutils=$ELFUTILS_VER zlib=$ZLIB_VER"

# Idempotent: nothing to do (and nothing printed) when all outputs are there
# and were built from the currently pinned versions.
outputs=(lib/libbpf.a lib/libelf.a lib/libz.a include/bpf/libbpf.h
         include/libelf.h include/gelf.h include/zlib.h)
uptodate=1
for f in "${outputs[@]}"; do [ -e "$out/$f" ] || uptodate=; done
if [ -n "$uptodate" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$stamp_text" ]; then
  exit 0
fi

# --- tools ------------------------------------------------------------------
# Install only what is missing (m4/gawk are used by elfutils' build scripts).
need=()
chk() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
chk gcc gcc; chk make make; chk m4 m4; chk gawk gawk; chk bzip2 bzip2
chk gzip gzip; chk readelf binutils; chk nm binutils; chk apt-get apt
if [ -n "$cross" ]; then
  chk "${cross}gcc" "gcc-$host"
  # libc headers for the target are only a Recommends of the cross gcc.
  [ -e "/usr/$host/include/stdio.h" ] || need+=("libc6-dev-${arch}-cross")
fi
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing packages: ${need[*]} (run as root or install them)"
  log "installing ${need[*]}"
  apt-get install -y --no-install-recommends "${need[@]}" >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
fi

# --- fetch (shared by all arches) ---------------------------------------------

# debian_archive: the Debian mirror and keyring of this machine's apt configuration.
. "$root/tools/debian-archive.sh"

sha_ok() { [ -f "$src/$1" ] && [ "$(sha256sum "$src/$1" | cut -d' ' -f1)" = "${SHA256[$1]}" ]; }

fetch() {
  local all=1 t
  for t in "${!SHA256[@]}"; do sha_ok "$t" || all=; done
  [ -n "$all" ] && return 0

  local entry uri keyring apt=$deps/apt
  entry=$(debian_archive)
  [ -n "$entry" ] || die "no Debian archive (URI ending in /debian, Debian suite) found in /etc/apt/sources.list{,.d/*.list,.d/*.sources}"
  uri=${entry%%$'\t'*}; keyring=${entry#*$'\t'}
  log "fetching sources from $uri"

  # Throwaway apt configuration: /etc/apt is neither read for sources nor modified.
  mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial" "$src"
  {
    echo "Types: deb-src"
    echo "URIs: $uri"
    echo "Suites: trixie bookworm"
    echo "Components: main"
    # Without Signed-By apt falls back to the system trusted keyrings.
    [ -z "$keyring" ] || echo "Signed-By: $keyring"
  } > "$apt/sources.list.d/debian-src.sources"
  # Sandbox::User=root: the download directories are in the repo tree, which
  # the _apt user cannot write; integrity still comes from the signed Release.
  local aptopts=(-q -o Dir::Etc::SourceList=/dev/null
    -o "Dir::Etc::SourceParts=$apt/sources.list.d"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
    -o APT::Sandbox::User="$(id -un)")
  apt-get "${aptopts[@]}" update >/dev/null ||
    die "apt-get update of the throwaway source list failed ($apt)"
  (cd "$src" && apt-get "${aptopts[@]}" source --download-only "${APT_SOURCES[@]}" >/dev/null) ||
    die "apt-get source ${APT_SOURCES[*]} failed"

  for t in "${!SHA256[@]}"; do
    [ -f "$src/$t" ] || die "$t was not downloaded: the mirror's package for the pinned version changed. Check which version the mirror now has and update the pins in tools/build-deps.sh."
    sha_ok "$t" || die "sha256 mismatch for $src/$t: expected ${SHA256[$t]}, got $(sha256sum "$src/$t" | cut -d' ' -f1). The upstream tarball on the mirror changed; verify it against the upstream release, then update the pin in tools/build-deps.sh (delete the file to re-download)."
  done
}

# Extract an orig tarball once into build/deps/src/<dir> (source trees are
# only read; every build happens in a per-arch directory).
extract() {
  local tarball=$1 dir=$2
  [ -f "$src/$dir/.extracted" ] && return 0
  rm -rf "${src:?}/$dir"
  tar -C "$src" -xf "$src/$tarball"
  [ -d "$src/$dir" ] || die "$tarball did not contain $dir/"
  touch "$src/$dir/.extracted"
}

fetch
extract "$LIBBPF_TAR" "libbpf-$LIBBPF_VER"
extract "$ELFUTILS_TAR" "elfutils-$ELFUTILS_VER"
extract "$ZLIB_TAR" "zlib-$ZLIB_VER.dfsg"

# --- build ------------------------------------------------------------------
log "building for $arch ($host) into $out"
rm -rf "$out"
mkdir -p "$out/lib" "$out/include" "$out/build"
bld=$out/build
jobs=$(nproc)
CC=${cross}gcc
AR=${cross}ar
RANLIB=${cross}ranlib
CFLAGS="-fPIC -O2 -g0"
# Keep the build logs; show the tail of the failing one.
run() { local name=$1; shift
  "$@" > "$bld/$name.log" 2>&1 || { tail -n 40 "$bld/$name.log" >&2; die "$name failed (log: $bld/$name.log)"; }
}

# zlib: static library only.
cp -a "$src/zlib-$ZLIB_VER.dfsg" "$bld/zlib"
( cd "$bld/zlib"
  run zlib-configure env CC="$CC" AR="$AR" RANLIB="$RANLIB" CHOST="$host" CFLAGS="$CFLAGS" \
      ./configure --static --prefix="$out"
  run zlib-make make -j"$jobs" libz.a )
install -m 644 "$bld/zlib/libz.a" "$out/lib/"
install -m 644 "$bld/zlib/zlib.h" "$bld/zlib/zconf.h" "$out/include/"

# libelf: only lib/ and libelf/ of elfutils, with as few dependencies as
# possible. glibc >= 2.33 exports fstat as a real symbol (fstat@GLIBC_2.33),
# which would raise the wheel's manylinux tag; route libelf's fstat calls to
# the raw syscall through a header force-included into every compile. It
# includes config.h first so the feature macros (_GNU_SOURCE,
# _FILE_OFFSET_BITS) are set before any system header is read.
cat > "$bld/fstat-syscall.h" <<'EOF'
/* Generated by tools/build-deps.sh: fstat via the raw syscall (no fstat@GLIBC_2.33). */
#include <config.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
static inline int ebpfsensor_fstat(int fd, struct stat *st)
{
#ifdef SYS_fstat
	return (int)syscall(SYS_fstat, fd, st);
#else
	return (int)syscall(SYS_newfstatat, fd, "", st, AT_EMPTY_PATH);
#endif
}
#define fstat(fd, st) ebpfsensor_fstat(fd, st)
EOF
mkdir -p "$bld/elfutils"
( cd "$bld/elfutils"
  cfg=(--disable-debuginfod --disable-libdebuginfod --without-bzlib --without-lzma
       --without-zstd --disable-nls --disable-dependency-tracking)
  [ -z "$cross" ] || cfg+=(--host="$host" --build="$build_triplet")
  run elfutils-configure env CC="$CC" AR="$AR" RANLIB="$RANLIB" CFLAGS="$CFLAGS" \
      CPPFLAGS="-I$out/include" LDFLAGS="-L$out/lib" \
      "$src/elfutils-$ELFUTILS_VER/configure" "${cfg[@]}"
  fc="-I$out/include -include $bld/fstat-syscall.h"
  run elfutils-lib make -j"$jobs" -C lib CPPFLAGS="$fc"
  run elfutils-libelf make -j"$jobs" -C libelf libelf.a CPPFLAGS="$fc" )
install -m 644 "$bld/elfutils/libelf/libelf.a" "$out/lib/"
for h in libelf.h gelf.h nlist.h; do
  install -m 644 "$src/elfutils-$ELFUTILS_VER/libelf/$h" "$out/include/"
done
if nm "$out/lib/libelf.a" | grep -Eq '^ +U (fstat|fstat64|__fxstat|__fxstat64)$'; then
  die "libelf.a still references glibc's fstat"
fi

# libbpf: static only, headers from `make install_headers`. Our libelf/zlib
# headers are passed directly (NO_PKG_CONFIG) so host .pc files cannot leak
# into a cross build. -U_FILE_OFFSET_BITS undoes the Makefile's
# -D_FILE_OFFSET_BITS=64, which would bind to newer glibc symbols; off_t is
# 64-bit on both targets anyway.
run libbpf make -j"$jobs" -C "$src/libbpf-$LIBBPF_VER/src" \
    CC="$CC" AR="$AR" CFLAGS="$CFLAGS" EXTRA_CFLAGS="-U_FILE_OFFSET_BITS -I$out/include" \
    NO_PKG_CONFIG=1 BUILD_STATIC_ONLY=y OBJDIR="$bld/libbpf" \
    DESTDIR="$out" PREFIX= LIBDIR=/lib INCLUDEDIR=/include \
    install install_headers
rm -rf "$out/lib/pkgconfig"   # libbpf.pc with PREFIX= would point at /lib

# Sanity checks: right machine, and (x86) no absolute 32-bit relocations,
# which would mean non-PIC code.
for a in libbpf.a libelf.a libz.a; do
  m=$(readelf -h "$out/lib/$a" | sed -n 's/^ *Machine: *//p' | sort -u)
  [ "$m" = "$machine" ] || die "$a: unexpected machine: $m"
  if [ "$arch" = x86 ] && readelf -r "$out/lib/$a" | grep -Eq 'R_X86_64_32S? '; then
    die "$a contains non-PIC relocations"
  fi
done

rm -rf "$bld"
echo "$stamp_text" > "$stamp"
log "done: $out"
