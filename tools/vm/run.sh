#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Boot a real Debian kernel, or one built from source, under qemu (software
# emulation, TCG) and run one command inside. The host root (or --root DIR) is
# shared read-only over 9p with a tmpfs overlay on top, so the project's tests
# run unchanged.
#
#   tools/vm/run.sh --kernel bookworm-6.1-amd64 [--timeout 600] [--mem 1G] -- CMD [ARG...]
#   tools/vm/run.sh --kernel linux-5.4.286 [--no-btf] -- CMD [ARG...]
#   tools/vm/run.sh --kernel ID --prepare     (downloads and builds only)
#
# Exit status: the guest command's, 124 on timeout, 125 if the guest failed
# (never reached the command, or died while running it), 2 on usage errors.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VMTEST_CACHE:-$repo/build/vm}

usage() {
	cat >&2 <<EOF
usage: $0 --kernel ID [options] -- COMMAND [ARG...]
  --kernel ID        bullseye-5.10-amd64 | bookworm-6.1-amd64 | trixie-6.12-amd64 | trixie-6.12-arm64
                     (any SUITE-MAJOR.MINOR-ARCH whose linux-image-ARCH matches),
                     or linux-5.4.286 | linux-4.19.72 (any linux-X.Y.Z folder of x86
                     kernels built from source, see below)
  --timeout SECONDS  kill the guest after this long (default 600; exit 124)
  --mem SIZE         guest memory (default 1G)
  --smp N            vCPUs (default 2)
  --cpu MODEL        qemu -cpu (default max,-avx,-avx2; arm64: max,pauth-impdef=on)
  --tcg MODE         multi: one host thread per vCPU; single: both vCPUs on one host
                     thread (default: single for amd64 guests, multi for arm64; see below)
  --root DIR         share DIR instead of / as the guest's root (e.g. an arm64 root)
  --initramfs-only   no 9p root: run COMMAND with the initramfs' busybox sh
  --append ARGS      extra kernel command line (an lsm=... here replaces the default:
                     CONFIG_LSM of the kernel plus bpf, so BPF LSM programs run)
  --env NAME=VALUE   set a variable for COMMAND (repeatable)
  --9p-cache MODE    9p cache mode: loose (default) or mmap
  --refresh          refresh the apt lists now (otherwise at most once a day)
  --no-btf           (linux-X.Y.Z only) leave the kernel's vmlinux.btf out of the guest
  --prepare          fetch the kernel and busybox and build the initramfs into the
                     cache, then exit without booting (no COMMAND): a later run of the
                     same kernel starts from the cache
COMMAND is run with its exact argv (use sh -c '...' for shell syntax), in the
host's current directory, stdin from /dev/null. VMTEST_KERNEL is set inside.
A linux-X.Y.Z kernel is the folder of that name in \$VMTEST_KERNELS_DIR if set,
else in ../shared/kernels beside the repository, else in /work/shared/kernels:
its bzImage is booted as is (everything the guest needs built in), and its
vmlinux.btf copied to /var/lib/ebpfsensor/btf/RELEASE.btf in the guest.
EOF
	exit 2
}

log() { printf 'run.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 125; }
# Where linux-X.Y.Z folders of kernels built from source are looked for, in order.
kernels_dirs() {
	if [[ -n ${VMTEST_KERNELS_DIR:-} ]]; then
		printf '%s\n' "$VMTEST_KERNELS_DIR"
	else
		printf '%s\n' "$(cd "$repo/.." && pwd)/shared/kernels" /work/shared/kernels | awk '!seen[$0]++'
	fi
}

kernel_id='' cpu='' tcg='' timeout=600 mem=1G smp=2 root=/ initramfs_only=0 prepare_only=0 append='' p9cache=loose refresh=0 btf=1
envs=()
while (($#)); do
	case $1 in
	--kernel) kernel_id=${2:?}; shift 2 ;;
	--timeout) timeout=${2:?}; shift 2 ;;
	--mem) mem=${2:?}; shift 2 ;;
	--smp) smp=${2:?}; shift 2 ;;
	--cpu) cpu=${2:?}; shift 2 ;;
	--tcg) tcg=${2:?}; shift 2 ;;
	--root) root=${2:?}; shift 2 ;;
	--initramfs-only) initramfs_only=1; shift ;;
	--append) append=${2?}; shift 2 ;;
	--env) envs+=("${2:?}"); shift 2 ;;
	--9p-cache) p9cache=${2:?}; shift 2 ;;
	--refresh) refresh=1; shift ;;
	--no-btf) btf=0; shift ;;
	--prepare) prepare_only=1; shift ;;
	--) shift; break ;;
	-h | --help) usage ;;
	*) log "unknown argument: $1"; usage ;;
	esac
done
(($#)) || ((prepare_only)) || { log "no command given after --"; usage; }
from_source=0 ksrc='' # ksrc: the folder of a kernel built from source
if [[ $kernel_id =~ ^linux-[0-9]+\.[0-9]+[0-9A-Za-z.+_-]*$ ]]; then
	# x86 bzImages only (checked below)
	suite='' kmajor='' arch=amd64 from_source=1
elif [[ $kernel_id =~ ^([a-z]+)-([0-9]+\.[0-9]+)-(amd64|arm64)$ ]]; then
	suite=${BASH_REMATCH[1]} kmajor=${BASH_REMATCH[2]} arch=${BASH_REMATCH[3]}
	# Debian's kernels carry their BTF in /sys/kernel/btf/vmlinux: nothing to leave out.
	((btf)) || { log "--no-btf is for linux-X.Y.Z kernels built from source only"; usage; }
else
	log "bad --kernel '$kernel_id'"
	usage
fi
[[ $timeout =~ ^[0-9]+$ ]] || { log "bad --timeout '$timeout'"; usage; }
[[ $smp =~ ^[1-9][0-9]*$ ]] || { log "bad --smp '$smp'"; usage; }
[[ $p9cache == loose || $p9cache == mmap ]] || { log "bad --9p-cache '$p9cache'"; usage; }
# Multi-threaded TCG (a host thread per vCPU) can go on running its stale
# translation of kernel text another vCPU has just patched (qemu 7.2). On 5.10
# that hung the guest when a static key flipped, e.g. as the first BPF program
# attaches to a syscall tracepoint: a vCPU looped for ever through asm_exc_int3
# on a breakpoint text_poke_bp() had already replaced (guest memory held the
# new nop or jmp; the int3 handler, finding no int3 there, re-runs the
# instruction: the stale one), within 4-16 parallel load/attach/detach cycles.
# With both vCPUs on one host thread 60 ran clean, and the kernel tier takes
# the same time on 5.10 and 6.1 (its tests run one thread at a time), so every
# x86 guest runs so. arm64 flips a static key with one instruction write (nop
# <-> branch, no breakpoint in between to loop on) and keeps a thread per vCPU.
case $tcg in
'') if [[ $arch == amd64 ]]; then tcg=single; else tcg=multi; fi ;;
single | multi) ;;
*) log "bad --tcg '$tcg'"; usage ;;
esac
root=$(cd "$root" && pwd) || die "--root $root: no such directory"
host_arch=$(dpkg --print-architecture)
if [[ $arch != "$host_arch" && $root == / && $initramfs_only == 0 && $prepare_only == 0 ]]; then
	die "the host root holds $host_arch binaries; an $arch guest needs --root DIR or --initramfs-only"
fi

t_start=$(date +%s.%N)
mkdir -p "$cache"
# build/vm/ must never be committed, whatever the repo's .gitignore says.
[[ -e $cache/.gitignore ]] || printf '*\n' >"$cache/.gitignore"

# Host tools: installed on first use through the host's own apt.
need() { # need COMMAND PACKAGE
	command -v "$1" >/dev/null && return
	log "installing $2 (for $1)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "$2" >&2 ||
		{ apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "$2" >&2; }
}
case $arch in
amd64) qemu='qemu-system-x86_64'; need "$qemu" qemu-system-x86 ;;
arm64) qemu='qemu-system-aarch64'; need "$qemu" qemu-system-arm ;;
esac
need cpio cpio
need xz xz-utils
need zstd zstd

# One preparation at a time: apt lists, downloads and initramfs builds are shared.
exec 8>"$cache/.prepare.lock"
flock 8

# ---- 1. A throwaway apt configuration, separate from the host's -------------
# (set up by apt_init when a Debian package is needed: kernels built from
# source need none, unless the host has no static busybox and none is cached)

# The Debian archive the machine already uses ("URI<TAB>Signed-By"), so that no
# mirror host is hard-coded here.
debian_archive() {
	local f
	shopt -s nullglob
	for f in /etc/apt/sources.list.d/*.sources; do
		awk 'BEGIN { RS = ""; FS = "\n" }
		{
			uris = sb = types = en = ""
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^#/ || !match($i, /^[A-Za-z-]+:/)) continue
				key = tolower(substr($i, 1, RLENGTH - 1)); val = substr($i, RLENGTH + 1)
				gsub(/^[ \t]+|[ \t]+$/, "", val)
				if (key == "uris") uris = val; else if (key == "types") types = val
				else if (key == "signed-by") sb = val; else if (key == "enabled") en = val
			}
			if (en == "no" || types !~ /(^|[ \t])deb([ \t]|$)/) next
			n = split(uris, u, /[ \t]+/)
			for (j = 1; j <= n; j++) if (u[j] ~ /^[a-z+]+:\/\/.*\/debian\/?$/) { print u[j] "\t" sb; exit }
		}' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		awk '/^[ \t]*deb[ \t]/ {
			line = $0; sb = ""
			sub(/^[ \t]*deb[ \t]+/, "", line)
			if (line ~ /^\[/) {
				opts = substr(line, 2, index(line, "]") - 2); line = substr(line, index(line, "]") + 1)
				n = split(opts, o, /[ \t]+/)
				for (k = 1; k <= n; k++) if (o[k] ~ /^signed-by=/) sb = substr(o[k], 11)
			}
			split(line, w, " ")
			if (w[1] ~ /^[a-z+]+:\/\/.*\/debian\/?$/) { print w[1] "\t" sb; exit }
		}' "$f"
	done
}
apt_opts=()
apt_init() {
	local archive_uri archive_key apt_dir sources
	((${#apt_opts[@]} == 0)) || return 0
	IFS=$'\t' read -r archive_uri archive_key < <(debian_archive | head -n1) ||
		die "no Debian archive (URI ending in /debian) in /etc/apt/sources.list{,.d}"

	apt_dir=$cache/apt
	mkdir -p "$apt_dir/sources.list.d" "$apt_dir/preferences.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
	sources=$(printf 'Types: deb\nURIs: %s\nSuites: bullseye bookworm trixie\nComponents: main\nArchitectures: amd64 arm64\n' "$archive_uri"
		[[ -z $archive_key ]] || printf 'Signed-By: %s\n' "$archive_key")
	if [[ $(cat "$apt_dir/sources.list.d/debian.sources" 2>/dev/null) != "$sources" ]]; then
		printf '%s\n' "$sources" >"$apt_dir/sources.list.d/debian.sources"
		rm -f "$apt_dir/lists/.updated"
	fi
	apt_opts=(
		-o Dir::Etc::SourceList=/dev/null
		-o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
		-o "Dir::Etc::Preferences=/dev/null" # the host's pins must not steer our choice
		-o "Dir::Etc::PreferencesParts=$apt_dir/preferences.d"
		-o "Dir::State::Lists=$apt_dir/lists"
		-o "Dir::Cache=$apt_dir/cache"
		# Keep the binary package cache (Docker-style configs switch it off): 2.5 s per query without.
		-o Dir::Cache::pkgcache=pkgcache.bin -o Dir::Cache::srcpkgcache=srcpkgcache.bin
		-o APT::Architectures::=amd64 -o APT::Architectures::=arm64
		-o Acquire::Languages=none
		-o APT::Sandbox::User=root # our cache dir is not writable for _apt
	)
	# apt stamps list files with the server's Last-Modified time, so their own mtime
	# says nothing about when we fetched them: a stamp file records that instead.
	if ((refresh)) || [[ -z $(find "$apt_dir/lists/.updated" -mmin -1440 2>/dev/null) ]]; then
		log "refreshing apt lists for $archive_uri (bullseye bookworm trixie, amd64 arm64)"
		if apt-get "${apt_opts[@]}" -q update >&2; then
			touch "$apt_dir/lists/.updated"
		elif [[ -e $apt_dir/lists/.updated ]]; then
			log "warning: apt-get update failed; using the lists of $(date -r "$apt_dir/lists/.updated" +%F)"
		else
			die "apt-get update failed"
		fi
	fi
}
apt_cache() { apt-cache "${apt_opts[@]}" "$@"; }

# Download PKG:ARCH=VERSION into DIR once; print the .deb's path.
fetch_deb() { # fetch_deb DIR PKG ARCH VERSION
	local dir=$1 pkg=$2 a=$3 v=$4 deb
	deb=$dir/${pkg}_${v//:/%3a}_$a.deb
	if [[ ! -s $deb ]]; then
		log "downloading $pkg:$a=$v"
		mkdir -p "$dir"
		(cd "$dir" && apt-get "${apt_opts[@]}" -q download "$pkg:$a=$v" >&2) || die "apt-get download $pkg:$a=$v failed"
	fi
	[[ -s $deb ]] || die "expected $deb after download"
	printf '%s\n' "$deb"
}

# ---- 2. The kernel -------------------------------------------------------------
# Each sets kdir (its cache dir), kimage, kconfig, kver (uname -r), mods (its
# module tree) and kdesc (what the boot line calls it).

# A Debian kernel: linux-image-ARCH of SUITE -> its linux-image-X dependency.
debian_kernel() {
	local meta meta_ver kpkg kroot deb kimages
	apt_init
	meta=linux-image-$arch
	# (awk reads all its input: an early exit would fail the pipeline under pipefail)
	meta_ver=$(apt_cache madison "$meta:$arch" | awk -F'|' -v s=" $suite/" 'index($3, s) && !v { gsub(/ /, "", $2); v = $2 } END { print v }')
	[[ -n $meta_ver ]] || die "no $meta in $suite/$arch"
	kpkg=$(apt_cache show "$meta:$arch=$meta_ver" | awk '/^Depends:/ && !d { d = $0 } END {
		sub(/^Depends:/, "", d); n = split(d, a, ",")
		for (i = 1; i <= n; i++) { sub(/\|.*/, "", a[i]); sub(/\(.*/, "", a[i]); gsub(/[ \t]/, "", a[i])
			if (a[i] ~ /^linux-image-/) { print a[i]; break } } }')
	[[ -n $kpkg ]] || die "$meta $meta_ver has no linux-image-* dependency"
	kver=${kpkg#linux-image-} # the uname -r of the kernel, e.g. 5.10.0-32-amd64
	[[ $kver == "$kmajor".* ]] || die "$suite's $meta is $kver, not $kmajor"
	# The -unsigned package has the same kernel without the Secure Boot wrapping.
	if apt_cache show "$kpkg-unsigned:$arch=$meta_ver" >/dev/null 2>&1; then kpkg=$kpkg-unsigned; fi
	kdesc="$kpkg $meta_ver"

	kdir=$cache/kernels/$kernel_id/${kpkg}_$meta_ver
	kroot=$kdir/root
	if [[ ! -e $kroot/.complete ]]; then
		deb=$(fetch_deb "$kdir" "$kpkg" "$arch" "$meta_ver")
		log "extracting $(basename "$deb")"
		rm -rf "$kroot" && mkdir -p "$kroot"
		dpkg-deb -x "$deb" "$kroot"
		touch "$kroot/.complete"
	fi
	kconfig=$(find "$kroot/boot" -maxdepth 1 -name 'config-*' -print -quit)
	kimages=("$kroot"/boot/vmlinu[xz]-*)
	kimage=${kimages[0]:-}
	[[ -f $kimage ]] || die "no kernel image in $kroot/boot"
	mods=$kroot/lib/modules/$kver
	[[ -d $mods ]] || mods=$kroot/usr/lib/modules/$kver
}

# The kernel_version string of an x86 boot image's setup header, first word:
# the release (uname -r). Fails if FILE is no x86 boot image.
bzimage_release() { # bzimage_release FILE
	local off
	[[ $(head -c 518 "$1" | tail -c 4) == HdrS ]] || return 1
	off=$(od -An -tu2 -j526 -N2 "$1" | tr -d ' ')
	if [[ ! $off =~ ^[0-9]+$ ]] || ((off == 0)); then return 1; fi
	head -c $((off + 0x200 + 256)) "$1" | tail -c 256 | tr '\0' '\n' | awk 'NR == 1 { print $1 }'
}

# A kernel built from source: <kernels dir>/linux-X.Y.Z/ with bzImage, config,
# vmlinux.btf and modules/*.ko, everything the guest needs built in.
source_kernel() {
	local d dirs=() avail ko n rel sum
	mapfile -t dirs < <(kernels_dirs)
	for d in "${dirs[@]}"; do
		if [[ -f $d/$kernel_id/bzImage ]]; then
			ksrc=$(cd "$d/$kernel_id" && pwd)
			break
		fi
	done
	if [[ -z $ksrc ]]; then
		avail=$(for d in "${dirs[@]}"; do [[ ! -d $d ]] || find "$d" -mindepth 2 -maxdepth 2 -name bzImage; done |
			awk -F/ '{ print $(NF - 1) }' | sort -u | paste -sd' ')
		die "no $kernel_id/bzImage in $(printf '%s, ' "${dirs[@]}" | sed 's/, $//')" \
			"(kernels there: ${avail:-none}; VMTEST_KERNELS_DIR names the folder that holds linux-X.Y.Z/)"
	fi
	kimage=$ksrc/bzImage
	kconfig=$ksrc/config
	[[ -f $kconfig ]] || die "no config beside $kimage (its CONFIG_PVH and CONFIG_BPF_LSM decide how it boots)"
	kver=$(bzimage_release "$kimage") || kver=''
	[[ -n $kver ]] || die "$kimage is not an x86 bzImage"
	if ((btf)) && [[ ! -f $ksrc/vmlinux.btf ]]; then
		die "no vmlinux.btf beside $kimage (--no-btf boots without one)"
	fi
	# No modules in the initramfs: what 9p root over virtio needs must be built in.
	if ((!initramfs_only)); then
		for n in VIRTIO_PCI NET_9P NET_9P_VIRTIO 9P_FS OVERLAY_FS TMPFS DEVTMPFS; do
			grep -q "^CONFIG_$n=y" "$kconfig" || die "$kernel_id: CONFIG_$n is not built in (=y); the guest loads no modules before mounting its root"
		done
	fi
	kdesc="$kver from $ksrc"
	# Keyed by the image's checksum: a rebuilt kernel gets a fresh initramfs.
	sum=$(sha256sum <"$kimage" | cut -c1-16)
	kdir=$cache/kernels/$kernel_id/bzImage_$sum
	# The modules as `make modules_install` lays them out (kernel/drivers/net/
	# dummy.ko), as tests expect of a module tree: each .ko's place is its
	# source file's directory, which its debug info names.
	mods=$kdir/modules
	if [[ ! -e $kdir/modules.complete ]]; then
		rm -rf "$mods" && mkdir -p "$mods"
		for ko in "$ksrc"/modules/*.ko; do
			[[ -f $ko ]] || continue
			n=${ko##*/} n=${n%.ko}
			rel=$(tr '\0' '\n' <"$ko" | LC_ALL=C grep -a -m1 -E "^[A-Za-z0-9_./-]+/$n\\.c\$" || true)
			rel=${rel:+kernel/${rel%/*}}
			mkdir -p "$mods/${rel:-extra}"
			cp "$ko" "$mods/${rel:-extra}/"
		done
		touch "$kdir/modules.complete"
	fi
}

if ((from_source)); then source_kernel; else debian_kernel; fi
mkdir -p "$kdir"
ln -sfn "$(basename "$kdir")" "$cache/kernels/$kernel_id/current"
# Older versions of this kernel are not needed any more.
for d in "$cache/kernels/$kernel_id"/*/; do
	[[ $d == "$kdir/" || -L ${d%/} ]] || rm -rf "$d"
done
# BPF LSM programs run only when "bpf" is in the active LSM list, which
# Debian's 5.10 leaves out of CONFIG_LSM: boot with the kernel's own default
# list plus bpf (an lsm= in --append replaces this). Kernels without the BPF
# LSM (5.4 and 4.19 predate it) boot with their own default.
lsm_arg=''
if [[ $append != *lsm=* && -n $kconfig ]] && grep -q '^CONFIG_BPF_LSM=y' "$kconfig"; then
	lsms=$(sed -n 's/^CONFIG_LSM="\(.*\)"$/\1/p' "$kconfig")
	[[ ,$lsms, == *,bpf,* ]] || lsms=${lsms:+$lsms,}bpf
	lsm_arg="lsm=$lsms"
fi

# x86: the bzImage's decompressor takes ~3 s under TCG. qemu boots the plain ELF
# vmlinux through its PVH entry instead (Debian has CONFIG_PVH; a kernel
# without it boots its bzImage), so unpack it once like the kernel's
# scripts/extract-vmlinux does.
extract_vmlinux() { # extract_vmlinux BZIMAGE OUT
	local magic tool off
	for magic in '\xfd7zXZ\x00:xz -dc' '\x1f\x8b\x08:gzip -dc' '\x28\xb5\x2f\xfd:zstd -qdc'; do
		tool=${magic#*:}
		for off in $(LC_ALL=C grep -obUaP "${magic%%:*}" "$1" | cut -d: -f1); do
			# The payload is followed by other data: ignore the decompressor's complaint.
			tail -c +$((off + 1)) "$1" | $tool >"$2.tmp" 2>/dev/null || true
			if [[ $(head -c 4 "$2.tmp" | od -An -tx1 | tr -d ' ') == 7f454c46 ]]; then
				mv "$2.tmp" "$2"
				return 0
			fi
		done
	done
	rm -f "$2.tmp"
	return 1
}
if [[ $arch == amd64 && -n $kconfig ]] && grep -q '^CONFIG_PVH=y' "$kconfig"; then
	if [[ ! -s $kdir/vmlinux ]] && ! extract_vmlinux "$kimage" "$kdir/vmlinux"; then
		log "warning: could not unpack vmlinux from $(basename "$kimage"); booting the bzImage (slower)"
		: >"$kdir/vmlinux"
	fi
	[[ ! -s $kdir/vmlinux ]] || kimage=$kdir/vmlinux
fi

# ---- 3. busybox for the guest architecture --------------------------------

# (a kernel built from source takes the newest one already downloaded, if any:
# no apt for it)
# (on a fresh machine there is no cache yet: find's failure is no error)
cached_busybox=$({ find "$cache/busybox/$arch" -mindepth 2 -maxdepth 2 -name busybox -type f -printf '%T@ %p\n' 2>/dev/null || true; } |
	sort -rn | awk 'NR == 1 { print $2 }')
if [[ $arch == "$host_arch" ]] && dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q ' installed'; then
	busybox=/bin/busybox
elif ((from_source)) && [[ -x $cached_busybox ]]; then
	busybox=$cached_busybox
else
	apt_init
	# Downloaded, never installed: busybox-static conflicts with the host's busybox.
	bb_ver=$(apt_cache madison "busybox-static:$arch" | awk -F'|' '!v { gsub(/ /, "", $2); v = $2 } END { print v }')
	[[ -n $bb_ver ]] || die "no busybox-static for $arch"
	bb_dir=$cache/busybox/$arch/${bb_ver//:/_}
	busybox=$bb_dir/busybox
	if [[ ! -x $busybox ]]; then
		deb=$(fetch_deb "$bb_dir" busybox-static "$arch" "$bb_ver")
		rm -rf "$bb_dir/x" && dpkg-deb -x "$deb" "$bb_dir/x"
		# /bin/busybox up to bookworm, /usr/bin/busybox from trixie on.
		for f in "$bb_dir"/x/{usr/,}bin/busybox; do [[ ! -f $f ]] || cp "$f" "$busybox"; done
		[[ -x $busybox ]] || die "no busybox in $deb"
		rm -rf "$bb_dir/x"
	fi
fi

# ---- 4. The initramfs: busybox, init.sh, and the modules for 9p + overlay -----
# (a kernel built from source has them built in, and its external BTF in the
# initramfs instead: init.sh copies it where the sensor looks unless --no-btf)

# Modules the guest needs, by name; those built into this kernel are skipped.
wanted=(virtio_pci 9pnet_virtio 9p overlay)
((!from_source)) || wanted=()

declare -A modpath=()
index_modules() {
	local f n
	while IFS= read -r f; do
		n=${f##*/} n=${n%%.ko*} n=${n//-/_}
		modpath[$n]=$f
	done < <(find "$mods/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
}
decompress() { # busybox insmod wants plain .ko files
	case $1 in
	*.xz) xz -dc "$1" ;; *.zst) zstd -qdc "$1" ;; *.gz) gzip -dc "$1" ;; *) cat "$1" ;;
	esac
}
builtin_module() { grep -q "/${1//_/[-_]}\.ko\$" "$mods/modules.builtin" 2>/dev/null; }
declare -A loaded=()
load_order=()
add_module() { # depth first over modinfo's depends=, so dependencies come first
	local n=${1//-/_} deps d
	[[ -n ${loaded[$n]:-} ]] && return
	loaded[$n]=1
	if [[ -z ${modpath[$n]:-} ]]; then
		builtin_module "$n" && return
		die "module $n is neither in $kdesc nor built in"
	fi
	decompress "${modpath[$n]}" >"$stage/modules/$n.ko"
	deps=$(tr '\0' '\n' <"$stage/modules/$n.ko" | awk '/^depends=/ && !d { d = substr($0, 9) } END { print d }')
	for d in ${deps//,/ }; do add_module "$d"; done
	load_order+=("$n")
}

key=$( {
	cat "$here/init.sh" "$busybox"
	echo "$kdesc ${wanted[*]}"
	[[ -z $ksrc || ! -f $ksrc/vmlinux.btf ]] || cat "$ksrc/vmlinux.btf"
} | sha256sum | cut -c1-16)
initramfs=$kdir/initramfs.cpio.gz
if [[ $(cat "$initramfs.key" 2>/dev/null) != "$key" ]]; then
	log "building initramfs for $kver"
	stage=$kdir/initramfs.stage
	rm -rf "$stage" && mkdir -p "$stage"/{bin,dev,proc,sys,mnt,modules}
	cp "$busybox" "$stage/bin/busybox"
	cp "$here/init.sh" "$stage/init" && chmod 755 "$stage/init"
	mknod "$stage/dev/console" c 5 1 # init's stdio before devtmpfs is mounted
	if ((${#wanted[@]})); then
		index_modules
		for m in "${wanted[@]}"; do add_module "$m"; done
	fi
	# one module a line, none for a kernel with everything built in
	printf '%s' "${load_order[@]/%/$'\n'}" >"$stage/modules/order"
	if [[ -n $ksrc && -f $ksrc/vmlinux.btf ]]; then
		mkdir -p "$stage/btf"
		cp "$ksrc/vmlinux.btf" "$stage/btf/vmlinux.btf"
	fi
	# Renamed into place: a guest of another checkout sharing this cache may be
	# reading the previous one (after the lock is released).
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$initramfs.tmp"
	mv "$initramfs.tmp" "$initramfs"
	echo "$key" >"$initramfs.key"
	rm -rf "$stage"
fi
flock -u 8
if ((prepare_only)); then
	log "$kernel_id: prepared ($(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s)"
	exit 0
fi

# ---- 5. Per-run part of the initramfs: the command and its environment ------

tmp=$(mktemp -d /tmp/vmtest.XXXXXX)
qemu_pid='' watcher=''
mods_bound=''
cleanup() {
	local p
	for p in $qemu_pid $watcher; do kill "$p" 2>/dev/null || true; done
	if [[ -n $mods_bound ]]; then
		umount "$mods_bound" 2>/dev/null || umount -l "$mods_bound" || true
		rmdir "$mods_bound" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Another root has no modules for this kernel: bind the package's tree in for
# the guest's duration (removed again by cleanup).
if ((!initramfs_only)) && [[ $root != / && ! -e $root/lib/modules/$kver && ! -e $root/usr/lib/modules/$kver ]]; then
	mkdir -p "$root/usr/lib/modules/$kver"
	mods_bound=$root/usr/lib/modules/$kver
	mount --bind -o ro "$mods" "$mods_bound" || die "cannot bind $mods into $root"
fi

shq() { # POSIX sh quoting of each argument, space separated
	local s q=()
	for s; do q+=("'${s//\'/\'\\\'\'}'"); done
	printf '%s' "${q[*]}"
}
mkdir -p "$tmp/run/vmtest"
{
	printf 'VMTEST_MODE=%s\n' "$([[ $initramfs_only == 1 ]] && echo initramfs || echo 9p)"
	printf 'VMTEST_9P_OPTS=%s\n' "$(shq "trans=virtio,version=9p2000.L,msize=512000,cache=$p9cache")"
	# Trees bound read-only from the share over the overlay: /usr, and the
	# prefix of the python3 the command will find (pyenv's, say). On overlayfs
	# stat() reports the overlay's device, while the kernel's mm->exe_file is
	# the lower file: tests that identify an executable by (dev, ino) need the
	# file where user space and the kernel agree, as on a real root.
	direct=/usr
	if [[ $root == / ]] && py=$( (pyenv which python3 || command -v python3) 2>/dev/null) && py=$(readlink -f "$py"); then
		py=${py%/bin/*}
		[[ $py == /usr || $py == /usr/* || ! -d $py ]] || direct+=" $py"
	fi
	printf 'VMTEST_DIRECT=%s\n' "$(shq "$direct")"
	# the guest's /tmp is a fresh tmpfs: init.sh keeps the command's directory
	# if it lies under the host's /tmp (a CI checkout, say)
	[[ $root != / ]] || printf 'VMTEST_CWD=%s\n' "$(shq "$PWD")"
	# where an administrator puts a kernel's external BTF, as the sensor's
	# default search looks for it (DIR/RELEASE.btf)
	((!from_source || !btf)) || printf 'VMTEST_BTF=%s\n' /var/lib/ebpfsensor/btf
} >"$tmp/run/vmtest/conf"
{
	if ((initramfs_only)); then
		echo 'cd /'
	else
		# The host's cwd exists in the guest only when the host root is shared.
		printf 'cd %s 2>/dev/null || cd /\n' "$(shq "$([[ $root == / ]] && pwd || echo /)")"
		printf 'export HOME=/root TERM=dumb LANG=%s\n' "$(shq "${LANG:-C.UTF-8}")"
		if [[ $root == / ]]; then
			for v in PATH PYENV_ROOT PYENV_VERSION VIRTUAL_ENV CI; do
				[[ -z ${!v:-} ]] || printf 'export %s=%s\n' "$v" "$(shq "${!v}")"
			done
			# A pyenv shim costs 3-10 s per python3 under TCG (a dozen bash
			# processes): put the interpreter it would pick first in PATH.
			if [[ $(command -v python3 || true) == */shims/python3 ]] && py=$(pyenv which python3 2>/dev/null); then
				# shellcheck disable=SC2016 # $PATH expands in the guest
				printf 'export PATH=%s:"$PATH"\n' "$(shq "${py%/*}")"
			fi
		else
			echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
		fi
	fi
	printf 'export VMTEST_KERNEL=%s\n' "$(shq "$kernel_id")"
	# the guest kernel's own modules, from its package or its folder (the
	# shared root has none for it): tests that load a real module look here
	if [[ $root == / ]]; then
		printf 'export VMTEST_KERNEL_MODULES=%s\n' "$(shq "$mods")"
	elif [[ -n $mods_bound ]]; then
		printf 'export VMTEST_KERNEL_MODULES=%s\n' "$(shq "/usr/lib/modules/$kver")"
	fi
	for e in ${envs[@]+"${envs[@]}"}; do printf 'export %s=%s\n' "${e%%=*}" "$(shq "${e#*=}")"; done
	printf 'exec %s\n' "$(shq "$@")"
} >"$tmp/run/vmtest/cmd"
(cd "$tmp" && find run | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$tmp/initrd"
# The kernel unpacks concatenated archives in turn.
cat "$initramfs" >>"$tmp/initrd"

# ---- 6. qemu -----------------------------------------------------------------

console_log=$tmp/console.log
# The serial console goes to stdout, and qemu itself copies it to console_log.
# shellcheck disable=SC2054 # commas belong to qemu's option syntax
qargs=(-accel "tcg,thread=$tcg" -smp "$smp" -m "$mem" -nodefaults -nographic -no-reboot
	-chardev "stdio,id=console,logfile=${console_log//,/,,}" -serial chardev:console
	-kernel "$kimage" -initrd "$tmp/initrd")
case $arch in
amd64)
	# Without AVX/AVX2 glibc picks SSE string functions, which TCG runs much
	# faster: Python starts in 1.0 s instead of 1.8 s.
	qargs+=(-machine q35 -cpu "${cpu:-max,-avx,-avx2}")
	# qboot (from qemu-system-data) starts the kernel ~0.3 s sooner than SeaBIOS, silently.
	[[ ! -f /usr/share/qemu/qboot.rom ]] || qargs+=(-bios /usr/share/qemu/qboot.rom)
	console=ttyS0
	;;
arm64)
	# pauth-impdef: the architected pointer-auth algorithm is slow to emulate.
	qargs+=(-machine virt -cpu "${cpu:-max,pauth-impdef=on}")
	console=ttyAMA0
	;;
esac
if ((!initramfs_only)); then
	# (a comma in a qemu option value is written ",,")
	# multidevs=remap: the host root spans several filesystems; keep inode numbers unique.
	# shellcheck disable=SC2054
	qargs+=(-fsdev "local,id=hostroot,path=${root//,/,,},security_model=none,readonly=on,multidevs=remap"
		-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot)
fi
# rcu_expedited: a normal RCU grace period waits for emulated timer ticks,
# and detaching each tracepoint link waits for two (closing a sensor with
# every kind: 6.3 s -> 2.8 s on 6.1)
qargs+=(-append "console=$console quiet panic=-1 random.trust_cpu=on rcupdate.rcu_expedited=1 $lsm_arg $append")

# guests take both cores: one at a time, unless the caller gives each of its
# concurrent guests a lock of its own (VM_GUEST_LOCK; .ci/run runs two lanes)
exec 9>"${VM_GUEST_LOCK:-$cache/.guest.lock}"
if ! flock -n 9; then
	log "waiting for another guest to finish"
	flock 9
fi

log "booting $kernel_id: $kdesc ($(basename "$kimage")), tcg $tcg, timeout ${timeout}s"
t_boot=$(date +%s.%N)
# Host-side time at which the guest reached the command.
(while sleep 0.1; do
	if grep -q VMTEST-START "$console_log" 2>/dev/null; then date +%s.%N >"$tmp/started"; exit; fi
done) &
watcher=$!
# In the background so that INT/TERM traps run at once (cleanup stops qemu);
# --foreground: no process group of its own, so a Ctrl-C reaches qemu too.
timeout --foreground --kill-after=10 "$timeout" "$qemu" "${qargs[@]}" </dev/null &
qemu_pid=$!
qrc=0
wait "$qemu_pid" || qrc=$?
qemu_pid=
t_end=$(date +%s.%N)
kill "$watcher" 2>/dev/null || true
wait "$watcher" 2>/dev/null || true
watcher=
[[ -e $tmp/started ]] || ! grep -q VMTEST-START "$console_log" || date +%s.%N >"$tmp/started"

rc=$(tr -d '\r' <"$console_log" | sed -n 's/.*VMTEST-EXIT=\([0-9][0-9]*\)$/\1/p' | tail -n1)
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
timing="prepare $(elapsed "$t_start" "$t_boot") s"
if [[ -e $tmp/started ]]; then timing+=", boot-to-command $(elapsed "$t_boot" "$(cat "$tmp/started")") s"; fi
timing+=", guest total $(elapsed "$t_boot" "$t_end") s"

if [[ $qrc == 124 || $qrc == 137 ]] && [[ -z $rc ]]; then
	log "$kernel_id: timed out after ${timeout}s ($timing)"
	exit 124
fi
if [[ -z $rc ]]; then
	if [[ -e $tmp/started ]]; then
		log "$kernel_id: the guest died while running the command (qemu exit $qrc; $timing)"
	else
		log "$kernel_id: the guest never reached the command (qemu exit $qrc; $timing); last console lines:"
		tail -n 40 "$console_log" | tr -d '\r' | sed 's/^/  | /' >&2
	fi
	exit 125
fi
log "$kernel_id: exit $rc ($timing)"
exit "$rc"
