# SPDX-License-Identifier: Apache-2.0
"""Get the kernel BTF out of a compressed kernel image without booting it.

Usage: python3 extract_btf.py VMLINUZ OUT_PREFIX

Decompresses VMLINUZ (x86 bzImage, [gzip'ed] arm64 Image, or anything that holds a
gzip/xz/lzma/bzip2/zstd/lz4 stream, found by magic search like the kernel's
scripts/extract-vmlinux). Then:
  * if the decompressed kernel is an ELF with a .BTF section, writes it to
    OUT_PREFIX.elf and prints "elf OUT_PREFIX.elf HOW" (use: bpftool btf dump file X);
  * otherwise searches the raw image for the BTF header magic 0xEB9F, validates
    every candidate (header fields, a full walk of the type section, the string
    section, and `bpftool btf dump ... format raw` when bpftool is on PATH), and
    writes the candidate with the most types to OUT_PREFIX.btf; prints
    "raw OUT_PREFIX.btf HOW".
HOW says how the image was unpacked: "uncompressed", "bzImage-<codec>" or
"<codec>@<offset>".
Diagnostics go to stderr. Python standard library only; zstd and lz4 payloads
need the `zstd` / `lz4` command line tools.
"""

import bz2
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

BTF_MAGIC = b"\x9f\xeb\x01\x00"  # u16 0xeb9f LE, version 1, flags 0

# (name, magic) as in scripts/extract-vmlinux
COMPRESSION_MAGICS = [
    ("gzip", b"\x1f\x8b\x08"),
    ("xz", b"\xfd7zXZ\x00"),
    ("bzip2", b"BZh"),
    ("lzma", b"\x5d\x00\x00\x00"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
    ("lz4", b"\x02\x21\x4c\x18"),
]


def log(msg):
    print("extract_btf: " + msg, file=sys.stderr)


def _run_tool(argv, data):
    if shutil.which(argv[0]) is None:
        return None
    p = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    # Trailing data after the stream makes these tools exit non-zero even
    # though the output is complete; accept any output of a plausible size.
    return p.stdout or None


def decompress(kind, data):
    try:
        if kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
        if kind == "xz":
            return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data)
        if kind == "lzma":
            return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(data)
        if kind == "zstd":
            return _run_tool(["zstd", "-dcq"], data)
        if kind == "lz4":
            return _run_tool(["lz4", "-dcq"], data)
    except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError):
        return None
    return None


def looks_like_kernel(blob):
    if not blob or len(blob) < 1 << 20:
        return False
    if blob[:4] == b"\x7fELF":
        return True
    if blob[0x38:0x3C] == b"ARM\x64":  # arm64 Image header magic
        return True
    return BTF_MAGIC in blob


def bzimage_payload(data):
    """Return the compressed payload of an x86 bzImage, or None."""
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        return None
    version = struct.unpack_from("<H", data, 0x206)[0]
    if version < 0x208:  # payload_offset/length exist since boot protocol 2.08
        return None
    setup_sects = data[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    return data[start:start + payload_length]


def decompress_kernel(data):
    if data[:4] == b"\x7fELF" or data[0x38:0x3C] == b"ARM\x64":
        log("image is not compressed")
        return data, "uncompressed"
    payload = bzimage_payload(data)
    if payload is not None:
        for kind, magic in COMPRESSION_MAGICS:
            if payload.startswith(magic):
                out = decompress(kind, payload)
                if looks_like_kernel(out):
                    log("x86 bzImage, %s payload of %d bytes -> %d bytes" % (kind, len(payload), len(out)))
                    return out, "bzImage-" + kind
        log("bzImage payload not recognised; falling back to magic search")
    # extract-vmlinux style: try every offset where a compression magic occurs.
    for kind, magic in COMPRESSION_MAGICS:
        pos = data.find(magic)
        while pos != -1:
            out = decompress(kind, data[pos:])
            if looks_like_kernel(out):
                log("%s stream at offset %d -> %d bytes" % (kind, pos, len(out)))
                return out, "%s@%d" % (kind, pos)
            pos = data.find(magic, pos + 1)
    raise SystemExit("extract_btf: no decompressible kernel found")


def elf_sections(blob):
    """Yield (name, offset, size) for the sections of a 64-bit little-endian ELF."""
    if blob[:4] != b"\x7fELF" or blob[4] != 2 or blob[5] != 1:
        return
    e_shoff = struct.unpack_from("<Q", blob, 0x28)[0]
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", blob, 0x3A)
    if not e_shoff or not e_shnum or e_shoff + e_shnum * e_shentsize > len(blob):
        return
    def sh(i):
        return struct.unpack_from("<IIQQQQ", blob, e_shoff + i * e_shentsize)
    strtab_off = sh(e_shstrndx)[4]
    for i in range(e_shnum):
        name_off, sh_type, _flags, _addr, off, size = sh(i)
        end = blob.index(b"\0", strtab_off + name_off)
        yield blob[strtab_off + name_off:end].decode("ascii", "replace"), off, size


# Extra bytes after the 12-byte struct btf_type, per kind: (fixed, per vlen entry)
KIND_EXTRA = {
    1: (4, 0),    # INT
    2: (0, 0),    # PTR
    3: (12, 0),   # ARRAY
    4: (0, 12),   # STRUCT
    5: (0, 12),   # UNION
    6: (0, 8),    # ENUM
    7: (0, 0),    # FWD
    8: (0, 0),    # TYPEDEF
    9: (0, 0),    # VOLATILE
    10: (0, 0),   # CONST
    11: (0, 0),   # RESTRICT
    12: (0, 0),   # FUNC
    13: (0, 8),   # FUNC_PROTO
    14: (4, 0),   # VAR
    15: (0, 12),  # DATASEC
    16: (0, 0),   # FLOAT
    17: (4, 0),   # DECL_TAG
    18: (0, 0),   # TYPE_TAG
    19: (0, 12),  # ENUM64
}


def parse_candidate(data, pos):
    """Validate a BTF header at pos; return (blob_len, ntypes) or None."""
    if pos + 24 > len(data):
        return None
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<IIIII", data, pos + 4)
    if hdr_len not in (24, 32):
        return None
    if type_len == 0 or str_len < 2 or type_len % 4:
        return None
    if type_off % 4 or str_off < type_off + type_len:
        return None
    if type_len > 256 << 20 or str_len > 256 << 20:
        return None
    end = max(type_off + type_len, str_off + str_len)
    if hdr_len == 32:
        layout_off, layout_len = struct.unpack_from("<II", data, pos + 24)
        end = max(end, layout_off + layout_len)
    blob_len = hdr_len + end
    if pos + blob_len > len(data):
        return None
    strs = pos + hdr_len + str_off
    if data[strs] != 0 or data[strs + str_len - 1] != 0:
        return None
    # Walk the whole type section: every record must end exactly at type_len.
    off, stop, ntypes = pos + hdr_len + type_off, pos + hdr_len + type_off + type_len, 0
    while off < stop:
        if off + 12 > stop:
            return None
        name_off, info = struct.unpack_from("<II", data, off)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        if kind not in KIND_EXTRA or name_off >= str_len:
            return None
        fixed, per = KIND_EXTRA[kind]
        off += 12 + fixed + per * vlen
        ntypes += 1
    if off != stop:
        return None
    return blob_len, ntypes


def bpftool_accepts(blob):
    if shutil.which("bpftool") is None:
        return True
    with tempfile.NamedTemporaryFile(suffix=".btf") as f:
        f.write(blob)
        f.flush()
        p = subprocess.run(["bpftool", "btf", "dump", "file", f.name, "format", "raw"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return p.returncode == 0


def main(argv):
    if len(argv) != 3:
        raise SystemExit(__doc__)
    src, prefix = argv[1], argv[2]
    with open(src, "rb") as f:
        kernel, how = decompress_kernel(f.read())

    btf_sec = [s for s in elf_sections(kernel) if s[0] == ".BTF"]
    if btf_sec and btf_sec[0][2] > 0:
        out = prefix + ".elf"
        with open(out, "wb") as f:
            f.write(kernel)
        log("ELF with .BTF section (%d bytes)" % btf_sec[0][2])
        print("elf %s %s" % (out, how))
        return 0

    best = None
    pos = kernel.find(BTF_MAGIC)
    while pos != -1:
        res = parse_candidate(kernel, pos)
        if res is None:
            log("candidate at 0x%x: rejected (header/type walk)" % pos)
        else:
            blob_len, ntypes = res
            ok = bpftool_accepts(kernel[pos:pos + blob_len])
            log("candidate at 0x%x: %d bytes, %d types, bpftool %s"
                % (pos, blob_len, ntypes, "ok" if ok else "REJECTS"))
            if ok and (best is None or ntypes > best[2]):
                best = (pos, blob_len, ntypes)
        pos = kernel.find(BTF_MAGIC, pos + 1)
    if best is None:
        raise SystemExit("extract_btf: no valid BTF blob found")
    pos, blob_len, ntypes = best
    out = prefix + ".btf"
    with open(out, "wb") as f:
        f.write(kernel[pos:pos + blob_len])
    log("picked candidate at 0x%x: %d bytes, %d types" % (pos, blob_len, ntypes))
    print("raw %s %s" % (out, how))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
