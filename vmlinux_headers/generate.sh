#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Regenerate vmlinux_headers/<arch>/vmlinux_<kver>.h from the BTF of a named Debian kernel
# package, without booting it, and record the provenance in vmlinux_headers/README.md.
#
#   bash vmlinux_headers/generate.sh [x86|arm64|all]      (default: all)
#
# Steps per arch: resolve the newest linux-image-6.12.*-<debarch>-unsigned in Debian trixie
# through a throwaway apt configuration under build/vmlinux/apt (the machine's /etc/apt is
# only read, to find its Debian mirror and keyring), download the .deb into build/vmlinux/debs
# (checked against the index's SHA256), extract boot/vmlinuz-*, decompress it and get the BTF
# (extract_btf.py: the ELF's .BTF section on x86, the raw 0xEB9F blob on arm64), run
# `bpftool btf dump file ... format c`, sanity-check and test-compile the header.
# Needs: apt-get, dpkg-deb, tar, python3, bpftool, clang, libbpf-dev headers, sha256sum.
# Environment: VMLINUX_BUILD_DIR (default <repo>/build/vmlinux), KERNEL_SERIES (default 6.12),
# DEBIAN_SUITE (default trixie).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BUILD=${VMLINUX_BUILD_DIR:-$REPO/build/vmlinux}
SERIES=${KERNEL_SERIES:-6.12}
SUITE=${DEBIAN_SUITE:-trixie}
README=$HERE/README.md
START=$SECONDS

die() { echo "generate.sh: error: $*" >&2; exit 1; }
log() { echo "generate.sh: $*" >&2; }

case ${1:-all} in
    x86) ARCHES=(x86) ;;
    arm64) ARCHES=(arm64) ;;
    all) ARCHES=(x86 arm64) ;;
    *) die "usage: bash vmlinux_headers/generate.sh [x86|arm64|all]" ;;
esac
[ $# -le 1 ] || die "usage: bash vmlinux_headers/generate.sh [x86|arm64|all]"
for tool in apt-get apt-cache dpkg-deb dpkg tar python3 bpftool clang sha256sum; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
[ -f /usr/include/bpf/bpf_helpers.h ] || die "/usr/include/bpf/bpf_helpers.h missing (apt-get install libbpf-dev)"

# ---------------------------------------------------------------- throwaway apt configuration
# Find the Debian archive (URI path ending in /debian) and its keyring in the machine's config.
read -r MIRROR KEYRING < <(python3 - <<'PY'
import glob, os, re, shlex, sys

def entries():
    files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    for path in files:
        if not os.path.isfile(path):
            continue
        for line in open(path, encoding="utf-8", errors="replace"):
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)", line)
            if not m:
                continue
            opts = dict(o.split("=", 1) for o in (m.group(1) or "").split() if "=" in o)
            yield [m.group(2)], opts.get("signed-by", "")
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        text = open(path, encoding="utf-8", errors="replace").read()
        for stanza in re.split(r"\n\s*\n", text):
            fields, key = {}, None
            for line in stanza.splitlines():
                if line.startswith("#"):
                    continue
                if line[:1] in (" ", "\t") and key:
                    fields[key] += "\n" + line.strip()
                elif ":" in line:
                    key, val = line.split(":", 1)
                    key = key.strip().lower()
                    fields[key] = val.strip()
            if fields.get("enabled", "yes").lower() == "no":
                continue
            if "deb" not in fields.get("types", "").split():
                continue
            yield fields.get("uris", "").split(), fields.get("signed-by", "")

for uris, signed_by in entries():
    for uri in uris:
        if re.match(r"^https?://[^/]+(/.*)?/debian/?$", uri):
            key = signed_by.strip()
            if not key or "\n" in key or not os.path.isfile(key):
                key = "/usr/share/keyrings/debian-archive-keyring.gpg"
            print(uri.rstrip("/"), key)
            sys.exit(0)
sys.exit("no Debian archive URI ending in /debian in /etc/apt/sources.list{,.d/*}")
PY
) || die "could not derive the Debian mirror from /etc/apt"
[ -f "$KEYRING" ] || die "keyring $KEYRING not found"

APTDIR=$BUILD/apt
mkdir -p "$APTDIR/sources.list.d" "$APTDIR/preferences.d" "$APTDIR/lists/partial" \
    "$APTDIR/cache/archives/partial" "$BUILD/debs"
cat >"$APTDIR/sources.list.d/debian-$SUITE.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE
Components: main
Architectures: amd64 arm64
Signed-By: $KEYRING
EOF
APT_OPTS=(
    -o Dir::Etc::SourceList=/dev/null
    -o "Dir::Etc::SourceParts=$APTDIR/sources.list.d"
    -o Dir::Etc::Preferences=/dev/null
    -o "Dir::Etc::PreferencesParts=$APTDIR/preferences.d"
    -o "Dir::State::Lists=$APTDIR/lists"
    -o "Dir::Cache=$APTDIR/cache"
    -o APT::Architectures::=amd64
    -o APT::Architectures::=arm64
)
log "apt-get update ($MIRROR $SUITE main, amd64+arm64, keyring $KEYRING)"
apt-get -q "${APT_OPTS[@]}" update >"$APTDIR/update.log" 2>&1 || {
    cat "$APTDIR/update.log" >&2
    die "apt-get update failed"
}

# Print one field of the candidate version of PKG:ARCH from the throwaway index.
pkg_field() {
    apt-cache "${APT_OPTS[@]}" show --no-all-versions "$1" 2>/dev/null |
        sed -n "s/^$2: //p" | head -n1
}

# Newest linux-image-<SERIES>.*-<debarch>-unsigned (or the signed linux-image-...-<debarch>).
resolve_package() {
    local debarch=$1 suffix names best="" bestver="" n v
    local re_series=${SERIES//./\\.}
    names=$(apt-cache "${APT_OPTS[@]}" pkgnames "linux-image-$SERIES." 2>/dev/null | sed 's/:.*//' | sort -u)
    for suffix in "-$debarch-unsigned" "-$debarch"; do
        for n in $(grep -E "^linux-image-$re_series\.[0-9]+[^-]*${suffix//./\\.}\$" <<<"$names" || true); do
            v=$(pkg_field "$n:$debarch" Version)
            [ -n "$v" ] || continue
            if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$bestver"; then
                best=$n bestver=$v
            fi
        done
        [ -z "$best" ] || break
    done
    [ -n "$best" ] || die "no linux-image-$SERIES.*-$debarch(-unsigned) package in $SUITE"
    echo "$best $bestver"
}

# ------------------------------------------------------------------------------- per arch
declare -A ROWS=()
generate_arch() {
    local arch=$1 debarch clang_arch pkg ver kver sha want deb debname work vmlinuz kind src unpack out
    case $arch in
        x86) debarch=amd64 clang_arch=x86 ;;
        arm64) debarch=arm64 clang_arch=arm64 ;;
    esac
    read -r pkg ver < <(resolve_package "$debarch")
    kver=${ver#*:}
    kver=${kver%-*}
    log "$arch: $pkg:$debarch $ver ($SUITE) -> vmlinux_$kver.h"

    # Download (cached), verified against the SHA256 of the signed index.
    want=$(pkg_field "$pkg:$debarch=$ver" SHA256)
    debname=$(basename "$(pkg_field "$pkg:$debarch=$ver" Filename)")
    debname=${debname//%3a/:}
    deb=$BUILD/debs/$debname
    if [ ! -f "$deb" ] || [ "$(sha256sum "$deb" | cut -d' ' -f1)" != "$want" ]; then
        log "$arch: downloading $debname"
        rm -f "$deb"
        (cd "$BUILD/debs" && apt-get -q "${APT_OPTS[@]}" -o APT::Sandbox::User=root \
            download "$pkg:$debarch=$ver") >&2
        [ -f "$deb" ] || deb=$(ls -t "$BUILD/debs/${pkg}_"*"_$debarch.deb" | head -n1)
    else
        log "$arch: using cached $deb"
    fi
    sha=$(sha256sum "$deb" | cut -d' ' -f1)
    [ "$sha" = "$want" ] || die "$deb: sha256 $sha != index $want"

    # Extract boot/vmlinuz-* only (the rest of the package is modules).
    work=$BUILD/$arch
    rm -rf "$work"
    mkdir -p "$work/pkg"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/pkg" --wildcards './boot/vmlinuz-*'
    vmlinuz=$(ls "$work"/pkg/boot/vmlinuz-* | head -n1)
    [ -f "$vmlinuz" ] || die "$deb has no boot/vmlinuz-*"

    read -r kind src unpack < <(python3 "$HERE/extract_btf.py" "$vmlinuz" "$work/vmlinux")
    [ -f "$src" ] || die "$arch: extract_btf.py produced nothing"

    mkdir -p "$HERE/$arch"
    out=$HERE/$arch/vmlinux_$kver.h
    bpftool btf dump file "$src" format c >"$out.tmp" || { rm -f "$out.tmp"; die "$arch: bpftool failed"; }
    check_header "$arch" "$clang_arch" "$out.tmp" || { rm -f "$out.tmp"; die "$arch: sanity check failed"; }

    # Install: replace older headers of this arch, relative symlink vmlinux.h.
    find "$HERE/$arch" -maxdepth 1 -name 'vmlinux_*.h' ! -name "vmlinux_$kver.h" -delete
    mv "$out.tmp" "$out"
    ln -sfn "vmlinux_$kver.h" "$HERE/$arch/vmlinux.h"

    local how bpftool_ver
    bpftool_ver=$(bpftool version 2>/dev/null | head -n1 | sed 's/^bpftool //')
    if [ "$kind" = elf ]; then
        how="\`bash vmlinux_headers/generate.sh $arch\`: \`boot/$(basename "$vmlinuz")\` ($unpack) → ELF vmlinux with \`.BTF\` → \`bpftool btf dump file $(basename "$src") format c\` (bpftool $bpftool_ver)"
    else
        how="\`bash vmlinux_headers/generate.sh $arch\`: \`boot/$(basename "$vmlinuz")\` ($unpack) → raw BTF blob sliced by \`extract_btf.py\` → \`bpftool btf dump file $(basename "$src") format c\` (bpftool $bpftool_ver)"
    fi
    ROWS[$arch]="| $arch | \`$pkg\` ($debarch) | \`$ver\` | $SUITE | \`$sha\` | $(date -u +%Y-%m-%d) | $how |"
    log "$arch: wrote $out ($(wc -l <"$out") lines, $(stat -c %s "$out") bytes)"
}

# Required types present, and a trivial BPF program compiles against the header.
check_header() {
    local arch=$1 clang_arch=$2 hdr=$3 t ok=0
    local types=("task_struct" "trace_event_raw_sys_enter" "linux_binprm" "pt_regs")
    [ "$arch" = arm64 ] && types+=("user_pt_regs")
    for t in "${types[@]}"; do
        grep -q "^struct $t {" "$hdr" || { log "$arch: struct $t missing"; return 1; }
    done
    local tmp
    tmp=$(mktemp -d /tmp/vmlinux-check.XXXXXX)
    mkdir "$tmp/inc"
    cp "$hdr" "$tmp/inc/vmlinux.h"   # t.c lives in $tmp, never next to a stray vmlinux.h
    cat >"$tmp/t.c" <<'EOF'
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

SEC("tracepoint/syscalls/sys_enter_execve")
int t_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ(task, tgid) + (int)ctx->id;
}

SEC("kprobe/bprm_execve")
int t_kprobe(struct pt_regs *ctx)
{
	struct linux_binprm *bprm = (struct linux_binprm *)PT_REGS_PARM1(ctx);
	return BPF_CORE_READ(bprm, argc);
}

char LICENSE[] SEC("license") = "GPL";
EOF
    if clang -g -O2 -target bpf "-D__TARGET_ARCH_$clang_arch" -I "$tmp/inc" \
        -c "$tmp/t.c" -o "$tmp/t.o" 2>"$tmp/clang.log"; then
        ok=1
    else
        cat "$tmp/clang.log" >&2
    fi
    rm -rf "$tmp"
    [ "$ok" = 1 ]
}

# ------------------------------------------------------------------------ README provenance
update_readme() {
    local rows=""
    local a
    for a in "${!ROWS[@]}"; do rows+="${ROWS[$a]}"$'\n'; done
    ROWS_TEXT=$rows python3 - "$README" <<'PY'
import os, sys
path = sys.argv[1]
begin, end = "<!-- provenance:begin -->", "<!-- provenance:end -->"
head = ("| arch | Debian package | version | suite | .deb sha256 | generated | command |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n")
if os.path.exists(path):
    text = open(path, encoding="utf-8").read()
else:
    text = ("# vmlinux headers\n\nKernel type headers for CO-RE BPF programs, generated by "
            "`generate.sh` from Debian kernel packages.\n\n")
if begin not in text or end not in text:
    text = text.rstrip("\n") + "\n\n" + begin + "\n" + end + "\n"
pre, rest = text.split(begin, 1)
section, post = rest.split(end, 1)
rows = {}
for line in section.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if line.startswith("|") and cells[0] not in ("arch", "---"):
        rows[cells[0]] = line
for line in os.environ["ROWS_TEXT"].splitlines():
    if line.strip():
        rows[line.strip("| ").split("|")[0].strip()] = line
order = sorted(rows, key=lambda a: (a not in ("x86", "arm64"), ["x86", "arm64"].index(a) if a in ("x86", "arm64") else 0, a))
body = head + "".join(rows[a] + "\n" for a in order)
with open(path + ".tmp", "w", encoding="utf-8") as f:
    f.write(pre + begin + "\n" + body + end + post)
os.replace(path + ".tmp", path)
PY
}

for arch in "${ARCHES[@]}"; do
    generate_arch "$arch"
done
update_readme
log "done in $((SECONDS - START)) s"
