#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# CPython 3.11 headers of another architecture, for cross compiling the
# extension: Debian bookworm's libpython3.11-dev:<arch>, downloaded through a
# throwaway apt configuration (the machine's /etc/apt is only read, to find
# its Debian mirror; no `dpkg --add-architecture`) and unpacked, not installed.
#
# Usage: tools/fetch-pyheaders.sh <arm64|amd64> <dir>
# Output: <dir>/usr/include/python3.11/Python.h and
#         <dir>/usr/include/<triplet>/python3.11/pyconfig.h; <dir>/.version
set -euo pipefail

die() { echo "fetch-pyheaders: error: $*" >&2; exit 1; }
log() { echo "fetch-pyheaders: $*" >&2; }

[ $# -eq 2 ] || die "usage: $0 <arm64|amd64> <dir>"
arch=$1
mkdir -p "$2" && out=$(cd "$2" && pwd)
pkg=libpython3.11-dev suite=bookworm
[ -s "$out/.version" ] && exit 0

root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
. "$root/tools/debian-archive.sh"
entry=$(debian_archive)
[ -n "$entry" ] || die "no Debian archive found in the apt configuration"
uri=${entry%%$'\t'*} keyring=${entry#*$'\t'}

apt=$out.apt
mkdir -p "$apt/sources.list.d" "$apt/preferences.d" "$apt/lists/partial" "$apt/cache/archives/partial"
{
  echo "Types: deb"
  echo "URIs: $uri"
  echo "Suites: $suite $suite-updates"
  echo "Components: main"
  echo "Architectures: $arch"
  [ -z "$keyring" ] || echo "Signed-By: $keyring"
} > "$apt/sources.list.d/debian.sources"
aptopts=(-q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt/sources.list.d"
  -o Dir::Etc::Preferences=/dev/null -o "Dir::Etc::PreferencesParts=$apt/preferences.d"
  -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Acquire::Languages=none
  -o APT::Architectures::="$arch" -o APT::Architecture="$arch" -o APT::Sandbox::User="$(id -un)")
log "resolving $pkg:$arch in $suite from $uri"
apt-get "${aptopts[@]}" update >/dev/null || die "apt-get update failed ($apt)"
ver=$(apt-cache "${aptopts[@]}" policy "$pkg:$arch" | awk '/Candidate:/ { print $2 }')
[ -n "$ver" ] && [ "$ver" != "(none)" ] || die "no $pkg for $arch in $suite"
rm -rf "$apt/debs" && mkdir -p "$apt/debs"
(cd "$apt/debs" && apt-get "${aptopts[@]}" download "$pkg:$arch=$ver" >/dev/null) ||
  die "apt-get download $pkg:$arch=$ver failed"
rm -rf "$out" && mkdir -p "$out"
dpkg-deb -x "$apt/debs/"*.deb "$out"
ls "$out"/usr/include/*/python3.11/pyconfig.h >/dev/null 2>&1 || die "no pyconfig.h in $pkg $ver"
[ -f "$out/usr/include/python3.11/Python.h" ] || die "no Python.h in $pkg $ver"
echo "$pkg:$arch $ver" > "$out/.version"
log "done: $pkg:$arch $ver in $out"
