# SPDX-License-Identifier: Apache-2.0
"""cffi API-mode builder for ebpfsensor._libbpf.

libbpf, libelf and zlib are linked statically (built with -fPIC by
tools/build-deps.sh, which this script runs when they are missing), so the
extension needs only libc at run time. The record layouts come from
bpf_src/events.h and the consumer's declarations from csrc/consumer.h (and
the workload loops' from csrc/loop.h): the cdef zone of each is fed to cffi
and the whole header is #included in the C source, so the compiler checks
the same text. The consumer itself (ring buffer callback, msgpack
transcoder, libbpf log routing, fmemopen shim) and the loops that
`ebpfsensor diagnostic overhead` times are plain C in csrc/, compiled into
the extension with warnings as errors.

Environment:
    EBPFSENSOR_ARCH   target BPF arch (x86 or arm64), default: this machine's
    EBPFSENSOR_DEPS   the static libraries' directory, default build/deps/<arch>
    CC                cross compiler, when EBPFSENSOR_ARCH is not this machine's
    EBPFSENSOR_SANITIZE  1: build with ASan and UBSan (needs LD_PRELOAD of the
                      compiler's libasan.so); the in-place build then goes to
                      build/ext/<arch>-sanitize/ and leaves python/ebpfsensor alone
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from pathlib import Path
from types import ModuleType

from cffi import FFI

ROOT = Path(__file__).resolve().parent


def _load_arch_module() -> ModuleType:
    """python/ebpfsensor/host/arch.py, the one machine -> BPF arch map, read
    on its own: the package cannot be imported before its extension exists."""
    path = ROOT / "python" / "ebpfsensor" / "host" / "arch.py"
    spec = importlib.util.spec_from_file_location("_ebpfsensor_arch", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


arch = _load_arch_module()
try:
    ARCH = os.environ.get("EBPFSENSOR_ARCH") or arch.bpf_arch_of()
except ValueError as exc:
    raise SystemExit(f"build_ext: {exc}; set EBPFSENSOR_ARCH") from None
if ARCH not in arch.BPF_ARCHES:
    raise SystemExit(f"build_ext: EBPFSENSOR_ARCH={ARCH} is not one of {', '.join(arch.BPF_ARCHES)}")
DEPS = Path(os.environ.get("EBPFSENSOR_DEPS") or ROOT / "build" / "deps" / ARCH).resolve()
EVENTS_H = ROOT / "bpf_src" / "events.h"
CSRC = ROOT / "csrc"
CONSUMER_H = CSRC / "consumer.h"
LOOP_H = CSRC / "loop.h"
C_SOURCES = sorted(CSRC.glob("*.c"))
C_HEADERS = [*sorted(CSRC.glob("*.h")), EVENTS_H]

_FIXED_TYPES = """
typedef uint8_t __u8; typedef uint16_t __u16; typedef uint32_t __u32; typedef uint64_t __u64;
typedef int8_t __s8; typedef int16_t __s16; typedef int32_t __s32; typedef int64_t __s64;
"""

# The subset of libbpf 1.x used by ebpfsensor._ffi; "..." lets the compiler
# fill in what the declarations leave out.
_LIBBPF_CDEF = """
struct bpf_object; struct bpf_program; struct bpf_map; struct bpf_link; struct ring_buffer; struct perf_buffer;
struct bpf_object_open_opts { size_t sz; const char *object_name; const char *btf_custom_path; ...; };

struct bpf_object *bpf_object__open_mem(const void *obj_buf, size_t obj_buf_sz,
                                        const struct bpf_object_open_opts *opts);
int bpf_object__load(struct bpf_object *obj);
void bpf_object__close(struct bpf_object *obj);
struct bpf_program *bpf_object__next_program(const struct bpf_object *obj, struct bpf_program *prog);
struct bpf_map *bpf_object__next_map(const struct bpf_object *obj, const struct bpf_map *map);

const char *bpf_program__name(const struct bpf_program *prog);
const char *bpf_program__section_name(const struct bpf_program *prog);
int bpf_program__set_autoload(struct bpf_program *prog, bool autoload);
bool bpf_program__autoload(const struct bpf_program *prog);
int bpf_program__set_log_buf(struct bpf_program *prog, char *log_buf, size_t log_size);
int bpf_program__fd(const struct bpf_program *prog);
int bpf_program__set_attach_target(struct bpf_program *prog, int attach_prog_fd, const char *attach_func_name);
size_t bpf_program__insn_cnt(const struct bpf_program *prog);
struct bpf_link *bpf_program__attach(const struct bpf_program *prog);
struct bpf_link *bpf_program__attach_tracepoint(const struct bpf_program *prog, const char *tp_category,
                                                const char *tp_name);
struct bpf_link *bpf_program__attach_raw_tracepoint(const struct bpf_program *prog, const char *tp_name);
struct bpf_link *bpf_program__attach_kprobe(const struct bpf_program *prog, bool retprobe, const char *func_name);
int bpf_link__destroy(struct bpf_link *link);

const char *bpf_map__name(const struct bpf_map *map);
int bpf_map__fd(const struct bpf_map *map);
int bpf_map__type(const struct bpf_map *map);
uint32_t bpf_map__max_entries(const struct bpf_map *map);
int bpf_map__set_max_entries(struct bpf_map *map, uint32_t max_entries);
uint32_t bpf_map__value_size(const struct bpf_map *map);
int bpf_map__reuse_fd(struct bpf_map *map, int fd);
int bpf_map__set_autocreate(struct bpf_map *map, bool autocreate);
void *bpf_map__initial_value(const struct bpf_map *map, size_t *psize);

int bpf_map_lookup_elem(int fd, const void *key, void *value);
int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags);
int bpf_map_delete_elem(int fd, const void *key);
int bpf_map_get_next_key(int fd, const void *key, void *next_key);
int bpf_enable_stats(int type);
struct bpf_test_run_opts { size_t sz; const void *ctx_in; uint32_t ctx_size_in; uint32_t retval; int repeat; ...; };
int bpf_prog_test_run_opts(int prog_fd, struct bpf_test_run_opts *opts);
struct bpf_prog_info { uint64_t run_time_ns; uint64_t run_cnt; uint32_t id; uint32_t verified_insns; ...; };
int bpf_prog_get_info_by_fd(int prog_fd, struct bpf_prog_info *info, uint32_t *info_len);
int bpf_map_create(int map_type, const char *map_name, uint32_t key_size, uint32_t value_size,
                   uint32_t max_entries, const void *opts);
int bpf_prog_load(int prog_type, const char *prog_name, const char *license, const void *insns, size_t insn_cnt,
                  void *opts);

int libbpf_num_possible_cpus(void);
int libbpf_strerror(int err, char *buf, size_t size);
int libbpf_probe_bpf_prog_type(int prog_type, const void *opts);
int libbpf_probe_bpf_map_type(int map_type, const void *opts);
uint32_t libbpf_major_version(void);
uint32_t libbpf_minor_version(void);

struct ring_buffer *ring_buffer__new(int map_fd, void *sample_cb, void *ctx, const void *opts);
void ring_buffer__free(struct ring_buffer *rb);
int ring_buffer__consume(struct ring_buffer *rb);
int ring_buffer__epoll_fd(const struct ring_buffer *rb);

#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERF_EVENT_ARRAY 4
#define BPF_MAP_TYPE_RINGBUF 27
#define BPF_MAP_TYPE_TASK_STORAGE 29
#define BPF_PROG_TYPE_SOCKET_FILTER 1
#define BPF_PROG_TYPE_TRACING 26
#define BPF_PROG_TYPE_RAW_TRACEPOINT 17
#define BPF_PROG_TYPE_TRACEPOINT 5
#define BPF_PROG_TYPE_KPROBE 2
#define BPF_PROG_TYPE_CGROUP_SKB 8
#define BPF_PROG_TYPE_LSM 29
#define BPF_STATS_RUN_TIME 0
"""

# cffi-only syntax, so not in csrc/consumer.h: "Python+C" makes cffi define
# _es_log non-static, so that csrc/log.c, compiled on its own, can call it.
_CALLBACK_CDEF = """
extern "Python+C" void _es_log(int level, const char *msg);
"""

# csrc/vmlinux_btf.c: one parse of the kernel's BTF shared by the loads of a start
_VMLINUX_BTF_CDEF = """
void es_vmlinux_btf_hold(void);
void es_vmlinux_btf_release(void);
unsigned long es_vmlinux_btf_parses(void);
int es_vmlinux_btf_cached(void);
"""


def cdef_zone(header: Path) -> str:
    """The text between /* cdef-begin */ and /* cdef-end */ in a header."""
    m = re.search(r"/\* cdef-begin \*/(.*)/\* cdef-end \*/", header.read_text(), re.S)
    if not m:
        raise SystemExit(f"build_ext: no cdef-begin/cdef-end zone in {header}")
    return m.group(1)


def _source_path(path: Path) -> str:
    """A path for set_source: setuptools wants it relative to setup.py's directory
    (the sdist lists it), ffi.compile() in __main__ absolute (it builds in its tmpdir)."""
    return str(path if __name__ == "__main__" else path.relative_to(ROOT))


def ensure_deps() -> None:
    """Build the static libraries when they are missing (a no-op otherwise)."""
    if not (DEPS / "lib" / "libbpf.a").exists():
        if "EBPFSENSOR_DEPS" in os.environ:
            raise SystemExit(f"build_ext: EBPFSENSOR_DEPS={DEPS} has no lib/libbpf.a (tools/build-deps.sh {ARCH})")
        subprocess.run(["bash", str(ROOT / "tools" / "build-deps.sh"), ARCH], check=True)


SANITIZE = os.environ.get("EBPFSENSOR_SANITIZE") == "1"
_SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"]

ffi = FFI()
ffi.cdef(
    _FIXED_TYPES
    + cdef_zone(EVENTS_H)
    + _LIBBPF_CDEF
    + cdef_zone(CONSUMER_H)
    + cdef_zone(LOOP_H)
    + _CALLBACK_CDEF
    + _VMLINUX_BTF_CDEF
)
ffi.set_source(
    "ebpfsensor._libbpf",
    '#include <bpf/libbpf.h>\n#include <bpf/bpf.h>\n#include "events.h"\n#include "consumer.h"\n#include "loop.h"\n'
    + _VMLINUX_BTF_CDEF,
    sources=[_source_path(path) for path in C_SOURCES],
    depends=[_source_path(path) for path in C_HEADERS],
    include_dirs=[str(DEPS / "include"), str(CSRC), str(ROOT / "bpf_src")],
    extra_objects=[str(DEPS / "lib" / name) for name in ("libbpf.a", "libelf.a", "libz.a")],
    # keep libbpf's symbols private: another libbpf in the process must not
    # clash; send libbpf's fmemopen to __wrap_fmemopen (see csrc/fmemopen.c),
    # and its loads and frees of the kernel's BTF to csrc/vmlinux_btf.c
    extra_link_args=[
        "-Wl,--exclude-libs,ALL",
        "-Wl,--wrap=fmemopen",
        "-Wl,--wrap=btf__load_vmlinux_btf",
        "-Wl,--wrap=btf__free",
        *(_SANITIZE_FLAGS if SANITIZE else []),
    ],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror", *(_SANITIZE_FLAGS if SANITIZE else [])],
    py_limited_api=True,
)

if __name__ == "__main__":
    # an in-place build for development (`make ext`); wheels go through setup.py
    import shutil

    ensure_deps()
    tmp = ROOT / "build" / "ext" / (f"{ARCH}-sanitize" if SANITIZE else ARCH)
    tmp.mkdir(parents=True, exist_ok=True)
    built = ffi.compile(tmpdir=str(tmp), verbose=bool(os.environ.get("V")))
    # a sanitized extension cannot load without LD_PRELOAD: it stays in tmp
    if not SANITIZE:
        shutil.copy2(built, ROOT / "python" / "ebpfsensor" / Path(built).name)
