#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# A root for the kernel tier on another architecture's kernel (run.sh --root):
# the cached minimal Debian root of tools/mkroot.sh (python3 only), with an
# overlay on top that holds the built wheel and its runtime dependencies, pytest,
# the tools the kernel tier runs (bpftool lists loaded programs, gcc builds the
# diagnostic's C loops, stress-ng) and a copy of tests/, examples/ and pyproject.toml in
# /opt/ebpfsensor-tests. The cached root is never modified.
#
#   tools/vm/wheel-root.sh up <arm64|amd64> <wheel> <dir>   mount it at <dir>/root
#   tools/vm/wheel-root.sh down <dir>                        unmount, drop the overlay
#   tools/vm/wheel-root.sh prepare <arm64|amd64>             the cached root and tools only
#
# pip runs on the host with --platform/--python-version of the root (as in
# tools/wheel-test.sh); the tools are unpacked from bookworm's .debs for the
# root's architecture, with the dependencies apt finds missing from the root's
# own package list, fetched through a throwaway apt configuration
# (build/vm/apt-<arch>) that only reads the host's mirror. Unpacked, not
# installed: nothing of theirs needs a maintainer script.
set -euo pipefail

die() { echo "wheel-root: error: $*" >&2; exit 1; }
log() { echo "wheel-root: $*" >&2; }

repo=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
cd "$repo"

down() { # down DIR
	local root=$1/root
	if mountpoint -q "$root"; then
		umount -R "$root" || { sleep 1; umount -R -l "$root"; }
	fi
	rm -rf "$1/upper" "$1/work"
}

case ${1:-} in
down) [ $# -eq 2 ] || die "usage: $0 down <dir>"; down "$2"; exit 0 ;;
up) [ $# -eq 4 ] || die "usage: $0 up <arm64|amd64> <wheel> <dir>" ;;
prepare) [ $# -eq 2 ] || die "usage: $0 prepare <arm64|amd64>" ;;
*) die "usage: $0 up <arm64|amd64> <wheel> <dir> | down <dir> | prepare <arm64|amd64>" ;;
esac
cmd=$1 debarch=$2
case $debarch in arm64) arch=aarch64 ;; amd64) arch=x86_64 ;; *) die "unsupported arch $debarch" ;; esac
if [ "$cmd" = up ]; then
	whl=$(readlink -f "$3") dir=$4
	[ -f "$whl" ] || die "no wheel $3 (make wheel ARCH=$arch)"
fi
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, mounts)"
PYTHON=${PYTHON:-python3}

base=$repo/build/roots/bookworm-$debarch
bash tools/mkroot.sh "$debarch" "$base"

# the tools and the libraries the minimal root lacks, unpacked once
debs=$repo/build/vm/debs-bookworm-$debarch
pkgs=(bpftool gcc libc6-dev stress-ng)
if [[ $(cat "$debs/.done" 2>/dev/null) != "${pkgs[*]}" ]]; then
	. tools/debian-archive.sh
	entry=$(debian_archive)
	[ -n "$entry" ] || die "no Debian archive found in the apt configuration"
	uri=${entry%%$'\t'*} keyring=${entry#*$'\t'}
	apt=$repo/build/vm/apt-bookworm-$debarch
	mkdir -p "$apt/sources.list.d" "$apt/preferences.d" "$apt/lists/partial"
	{
		printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nArchitectures: %s\n' "$uri" "$debarch"
		[ -z "$keyring" ] || printf 'Signed-By: %s\n' "$keyring"
	} >"$apt/sources.list.d/debian.sources"
	rm -rf "$debs" && mkdir -p "$debs/partial" "$debs/x"
	# Dir::State::status: what the root has, so that apt fetches the rest
	aptopts=(-q -y -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt/sources.list.d"
		-o Dir::Etc::Preferences=/dev/null -o "Dir::Etc::PreferencesParts=$apt/preferences.d"
		-o "Dir::State::Lists=$apt/lists" -o "Dir::State::status=$base/var/lib/dpkg/status"
		-o "Dir::Cache=$apt/cache" -o "Dir::Cache::archives=$debs" -o Acquire::Languages=none
		-o APT::Architectures::="$debarch" -o APT::Architecture="$debarch" -o APT::Sandbox::User=root
		-o APT::Install-Recommends=false)
	log "fetching ${pkgs[*]} and what they need ($debarch, bookworm)"
	apt-get "${aptopts[@]}" update >/dev/null || die "apt-get update failed ($apt)"
	apt-get "${aptopts[@]}" install --download-only "${pkgs[@]}" >"$debs/apt.log" 2>&1 ||
		{ tail -n 20 "$debs/apt.log" >&2; die "apt-get could not fetch ${pkgs[*]}"; }
	for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$debs/x"; done
	rm -rf "$debs/x/usr/share/doc" "$debs/x/usr/share/man"
	echo "${pkgs[*]}" >"$debs/.done"
fi
[ "$cmd" = up ] || { log "prepared: $base and $debs"; exit 0; }

down "$dir"
root=$dir/root
mkdir -p "$dir/upper" "$dir/work" "$root"
mount -t overlay overlay -o "lowerdir=$base,upperdir=$dir/upper,workdir=$dir/work" "$root"
# (the .debs still ship /lib; the root's /lib is a symlink into /usr)
tar -C "$debs/x" -cf - . | tar -C "$root" -xf - --keep-directory-symlink

glibc=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Version}' libc6 | sed 's/^\([0-9]*\.[0-9]*\).*/\1/')
py=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Version}' python3 | sed 's/^\([0-9]*\.[0-9]*\).*/\1/')
[ -n "$glibc" ] && [ -n "$py" ] || die "cannot read libc6/python3 versions from $base"
site=/usr/local/lib/python$py/dist-packages
plats=()
for ((n = ${glibc#*.}; n >= 5; n--)); do plats+=(--platform "manylinux_2_${n}_$arch"); done
plats+=(--platform "manylinux2014_$arch")
log "installing ${whl##*/} + pytest into $site (Python $py, glibc $glibc)"
"$PYTHON" -m pip install -q --root-user-action=ignore --disable-pip-version-check \
	--target "$root$site" "${plats[@]}" --python-version "$py" \
	--implementation cp --only-binary=:all: "$whl" pytest >"$dir/pip.log" 2>&1 ||
	{ cat "$dir/pip.log" >&2; die "pip could not install the wheel for $debarch"; }

mkdir -p "$root/opt/ebpfsensor-tests"
cp -r tests examples pyproject.toml "$root/opt/ebpfsensor-tests/"
find "$root/opt/ebpfsensor-tests" -name __pycache__ -prune -exec rm -rf {} +
log "ready: $root"
