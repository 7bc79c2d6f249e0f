# SPDX-License-Identifier: Apache-2.0
"""cffi API-mode builder for ebpfsensor._libbpf.

libbpf, libelf and zlib are linked statically (built with -fPIC by
tools/build-deps.sh, which this script runs when they are missing), so the
extension needs only libc at run time. The record layouts come from
bpf_src/events.h: its cdef zone is fed to cffi and the whole header is
#included in the C source, so the compiler checks the same text.

Environment:
    EBPFSENSOR_ARCH   target BPF arch (x86 or arm64), default: this machine's
    EBPFSENSOR_DEPS   the static libraries' directory, default build/deps/<arch>
    CC                cross compiler, when EBPFSENSOR_ARCH is not this machine's
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent
_MACHINE_TO_ARCH = {"x86_64": "x86", "aarch64": "arm64", "arm64": "arm64"}
ARCH = os.environ.get("EBPFSENSOR_ARCH") or _MACHINE_TO_ARCH.get(platform.machine(), "")
if ARCH not in ("x86", "arm64"):
    raise SystemExit(f"build_ext: unsupported architecture {platform.machine()!r}; set EBPFSENSOR_ARCH")
DEPS = Path(os.environ.get("EBPFSENSOR_DEPS") or ROOT / "build" / "deps" / ARCH).resolve()
EVENTS_H = ROOT / "bpf_src" / "events.h"

_FIXED_TYPES = """
typedef uint8_t __u8; typedef uint16_t __u16; typedef uint32_t __u32; typedef uint64_t __u64;
typedef int8_t __s8; typedef int16_t __s16; typedef int32_t __s32; typedef int64_t __s64;
"""

# The subset of libbpf 1.x used by ebpfsensor._ffi; "..." lets the compiler
# fill in what the declarations leave out.
_LIBBPF_CDEF = """
struct bpf_object; struct bpf_program; struct bpf_map; struct bpf_link; struct ring_buffer;
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
size_t bpf_program__insn_cnt(const struct bpf_program *prog);
struct bpf_link *bpf_program__attach(const struct bpf_program *prog);
int bpf_link__destroy(struct bpf_link *link);

const char *bpf_map__name(const struct bpf_map *map);
int bpf_map__fd(const struct bpf_map *map);
int bpf_map__type(const struct bpf_map *map);
uint32_t bpf_map__max_entries(const struct bpf_map *map);
int bpf_map__set_max_entries(struct bpf_map *map, uint32_t max_entries);
uint32_t bpf_map__value_size(const struct bpf_map *map);
int bpf_map__reuse_fd(struct bpf_map *map, int fd);
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
#define BPF_MAP_TYPE_RINGBUF 27
#define BPF_PROG_TYPE_TRACING 26
#define BPF_PROG_TYPE_RAW_TRACEPOINT 17
#define BPF_PROG_TYPE_TRACEPOINT 5
#define BPF_STATS_RUN_TIME 0
"""

# The consumer's tables and state: valid C and valid cdef, so written once.
_CONSUMER_DECLS = """
#define ES_U 1
#define ES_S 2
#define ES_BOOL 3
#define ES_CSTR 4
#define ES_TAIL_STR 5
#define ES_TAIL_STRLIST 6
#define ES_BYTES 7
#define ES_OPTBOOL 8
#define ES_BATCH_FULL -28
#define ES_MAX_TYPES 64

struct es_field { uint32_t kind; uint32_t offset; uint32_t size; uint32_t key_len; const char *key; };
struct es_record {
    uint32_t fixed_size; uint32_t nfields; uint32_t head_len; uint32_t cgroup_off;
    const char *head; const struct es_field *fields;
};
/* cgroup id -> container id, msgpack-encoded; id 0 marks a free slot */
struct es_cgroup_slot { uint64_t id; uint32_t len; uint8_t enc[68]; };
#define ES_CGROUP_SLOTS 4096
#define ES_MAX_MISSES 64
struct es_consumer {
    struct ring_buffer *rb;
    const struct es_record *records; uint32_t nrecords; uint32_t _pad;
    uint8_t *buf; size_t cap; size_t len; size_t reserve;
    uint32_t count; uint32_t max_count;
    uint64_t delivered[ES_MAX_TYPES]; uint64_t raw;
    struct es_cgroup_slot *cgroups; uint32_t ncgroups; uint32_t nmisses;
    uint64_t misses[ES_MAX_MISSES];
};
"""

# See the comment at the top of _CONSUMER_C.
_CONSUMER_CDEF = """
extern "Python" void _es_log(int level, const char *msg);
void es_route_libbpf_log(void);
struct ring_buffer *es_ring_new(struct es_consumer *c, int map_fd);
int es_ring_add(struct es_consumer *c, int map_fd);
int es_poll(struct es_consumer *c, int timeout_ms);
int es_consume(struct es_consumer *c);
int es_transcode(struct es_consumer *c, const void *data, size_t size);
void es_batch_begin(struct es_consumer *c);
int es_cgroup_set(struct es_consumer *c, uint64_t id, const uint8_t *enc, uint32_t len);
void es_cgroup_clear(struct es_consumer *c);
size_t es_batch_end(struct es_consumer *c);
"""

_CONSUMER_C = r"""
/*
 * Ring buffer consumer. libbpf calls es_sample() for every record; it
 * transcodes the record into msgpack (a map per record, keyed by field name,
 * tagged with "kind") appended to one batch buffer, which Python decodes with
 * a single msgspec call: no Python code runs per record. A record that is
 * malformed, or whose strings are not valid UTF-8, is passed on whole as a
 * msgpack bin for the Python decoder to handle (faithfully or as an error).
 *
 * The field tables (struct es_record) are built in Python from cffi's view
 * of events.h and the msgspec Struct definitions, so nothing here knows a
 * record's layout.
 */
#include <errno.h>
#include <string.h>
#include <stdio.h>
#include <stdarg.h>

static void _es_log(int level, const char *msg); /* defined by cffi */

static int es_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	_es_log((int)level, msg);
	return 0;
}

void es_route_libbpf_log(void)
{
	libbpf_set_print(es_print);
}

static inline uint8_t *es_put_u8(uint8_t *p, uint8_t v) { *p++ = v; return p; }
static inline uint8_t *es_put_be16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; return p + 2; }
static inline uint8_t *es_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
	return p + 4;
}
static inline uint8_t *es_put_be64(uint8_t *p, uint64_t v)
{
	p = es_put_be32(p, (uint32_t)(v >> 32));
	return es_put_be32(p, (uint32_t)v);
}

static uint8_t *es_put_uint(uint8_t *p, uint64_t v)
{
	if (v < 128)
		return es_put_u8(p, (uint8_t)v);
	if (v <= 0xff)
		return es_put_u8(es_put_u8(p, 0xcc), (uint8_t)v);
	if (v <= 0xffff)
		return es_put_be16(es_put_u8(p, 0xcd), (uint16_t)v);
	if (v <= 0xffffffffu)
		return es_put_be32(es_put_u8(p, 0xce), (uint32_t)v);
	return es_put_be64(es_put_u8(p, 0xcf), v);
}

static uint8_t *es_put_int(uint8_t *p, int64_t v)
{
	if (v >= 0)
		return es_put_uint(p, (uint64_t)v);
	if (v >= -32)
		return es_put_u8(p, (uint8_t)v);
	if (v >= -128)
		return es_put_u8(es_put_u8(p, 0xd0), (uint8_t)v);
	if (v >= -32768)
		return es_put_be16(es_put_u8(p, 0xd1), (uint16_t)v);
	if (v >= -2147483648LL)
		return es_put_be32(es_put_u8(p, 0xd2), (uint32_t)v);
	return es_put_be64(es_put_u8(p, 0xd3), (uint64_t)v);
}

/* a msgpack length header: fix is the fix-size marker (fixstr holds up to
 * 31, fixarray and fixmap up to 15), c8/c16/c32 the sized markers */
static uint8_t *es_put_strhdr(uint8_t *p, uint32_t n, uint8_t fix, uint8_t c8, uint8_t c16, uint8_t c32)
{
	if (fix && n < (fix == 0xa0 ? 32u : 16u))
		return es_put_u8(p, fix | n);
	if (c8 && n <= 0xff)
		return es_put_u8(es_put_u8(p, c8), (uint8_t)n);
	if (n <= 0xffff)
		return es_put_be16(es_put_u8(p, c16), (uint16_t)n);
	return es_put_be32(es_put_u8(p, c32), n);
}

static inline uint8_t *es_put_str(uint8_t *p, const char *s, uint32_t n)
{
	p = es_put_strhdr(p, n, 0xa0, 0xd9, 0xda, 0xdb);
	memcpy(p, s, n);
	return p + n;
}

/* strict UTF-8 (no overlongs, no surrogates), as Python's decoder wants */
static int es_utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			if (i + 1 >= n || (s[i + 1] & 0xc0) != 0x80)
				return 0;
			i += 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			if (i + 2 >= n || (s[i + 1] & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80)
				return 0;
			if (c == 0xe0 && s[i + 1] < 0xa0)
				return 0;
			if (c == 0xed && s[i + 1] >= 0xa0)
				return 0;
			i += 3;
		} else if (c >= 0xf0 && c <= 0xf4) {
			if (i + 3 >= n || (s[i + 1] & 0xc0) != 0x80 || (s[i + 2] & 0xc0) != 0x80 ||
			    (s[i + 3] & 0xc0) != 0x80)
				return 0;
			if (c == 0xf0 && s[i + 1] < 0x90)
				return 0;
			if (c == 0xf4 && s[i + 1] >= 0x90)
				return 0;
			i += 4;
		} else {
			return 0;
		}
	}
	return 1;
}

static uint64_t es_load_uint(const uint8_t *p, uint32_t size)
{
	uint8_t v8; uint16_t v16; uint32_t v32; uint64_t v64;

	switch (size) {
	case 1: memcpy(&v8, p, 1); return v8;
	case 2: memcpy(&v16, p, 2); return v16;
	case 4: memcpy(&v32, p, 4); return v32;
	default: memcpy(&v64, p, 8); return v64;
	}
}

static int64_t es_load_int(const uint8_t *p, uint32_t size)
{
	int32_t v32; int64_t v64;

	if (size == 4) {
		memcpy(&v32, p, 4);
		return v32;
	}
	memcpy(&v64, p, 8);
	return v64;
}

/* a tail string without its trailing NULs */
static uint32_t es_trim(const uint8_t *s, uint32_t n)
{
	while (n && s[n - 1] == 0)
		n--;
	return n;
}

/* Append the record as a msgpack bin: the Python decoder takes over. */
static void es_put_raw(struct es_consumer *c, const void *data, uint32_t size)
{
	uint8_t *p = c->buf + c->len;

	p = es_put_strhdr(p, size, 0, 0xc4, 0xc5, 0xc6);
	memcpy(p, data, size);
	c->len = (size_t)(p + size - c->buf);
	c->raw++;
}

static inline uint32_t es_cgroup_hash(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return (uint32_t)id & (ES_CGROUP_SLOTS - 1);
}

/* the container id of a cgroup, or an empty string and a note for Python
 * to resolve it (cgroup paths are read from the filesystem, once) */
static uint8_t *es_put_container(struct es_consumer *c, uint8_t *p, uint64_t id)
{
	uint32_t i, h = es_cgroup_hash(id);

	if (id == 0) /* no cgroup (v1 only): no container */
		return es_put_u8(p, 0xa0);
	for (i = 0; i < ES_CGROUP_SLOTS; i++) {
		struct es_cgroup_slot *s = &c->cgroups[(h + i) & (ES_CGROUP_SLOTS - 1)];

		if (s->id == id) {
			memcpy(p, s->enc, s->len);
			return p + s->len;
		}
		if (s->id == 0)
			break;
	}
	for (i = 0; i < c->nmisses; i++)
		if (c->misses[i] == id)
			break;
	if (i == c->nmisses && c->nmisses < ES_MAX_MISSES)
		c->misses[c->nmisses++] = id;
	return es_put_u8(p, 0xa0);
}

int es_cgroup_set(struct es_consumer *c, uint64_t id, const uint8_t *enc, uint32_t len)
{
	uint32_t i, h = es_cgroup_hash(id);

	if (!id || len > sizeof(c->cgroups[0].enc) || c->ncgroups >= ES_CGROUP_SLOTS / 2)
		return -1;
	for (i = 0; i < ES_CGROUP_SLOTS; i++) {
		struct es_cgroup_slot *s = &c->cgroups[(h + i) & (ES_CGROUP_SLOTS - 1)];

		if (s->id == 0 || s->id == id) {
			c->ncgroups += s->id == 0;
			s->id = id;
			s->len = len;
			memcpy(s->enc, enc, len);
			return 0;
		}
	}
	return -1;
}

void es_cgroup_clear(struct es_consumer *c)
{
	memset(c->cgroups, 0, sizeof(struct es_cgroup_slot) * ES_CGROUP_SLOTS);
	c->ncgroups = 0;
}

/* 0: transcoded; 1: needs the Python decoder (bad UTF-8 or malformed) */
static int es_put_record(struct es_consumer *c, const uint8_t *rec, uint32_t size)
{
	const struct es_record *r;
	const struct es_field *f;
	uint32_t type, rsize, tail, i;
	uint8_t *p = c->buf + c->len;

	if (size < 16)
		return 1;
	memcpy(&type, rec + 8, 4);
	memcpy(&rsize, rec + 12, 4);
	if (type >= c->nrecords || !c->records[type].nfields)
		return 1;
	r = &c->records[type];
	if (rsize > size || rsize < r->fixed_size)
		return 1;
	size = rsize;

	/* first pass: check tails fit and strings are UTF-8, so the second
	 * pass cannot fail half-way through */
	tail = r->fixed_size;
	for (i = 0; i < r->nfields; i++) {
		f = &r->fields[i];
		if (f->kind == ES_CSTR) {
			const uint8_t *s = rec + f->offset;
			if (!es_utf8_ok(s, strnlen((const char *)s, f->size)))
				return 1;
		} else if (f->kind == ES_TAIL_STR || f->kind == ES_TAIL_STRLIST) {
			uint32_t n = (uint32_t)es_load_uint(rec + f->offset, 4);
			if (n > size - tail)
				return 1;
			/* argv items are separated by NULs, which UTF-8 allows */
			if (!es_utf8_ok(rec + tail, n))
				return 1;
			tail += n;
		}
	}

	/* "kind" and "container_id" come first, then the record's fields */
	p = es_put_strhdr(p, r->nfields + 2, 0x80, 0, 0xde, 0xdf);
	memcpy(p, r->head, r->head_len);
	p += r->head_len;
	p = es_put_container(c, p, es_load_uint(rec + r->cgroup_off, 8));
	tail = r->fixed_size;
	for (i = 0; i < r->nfields; i++) {
		f = &r->fields[i];
		memcpy(p, f->key, f->key_len);
		p += f->key_len;
		switch (f->kind) {
		case ES_U:
			p = es_put_uint(p, es_load_uint(rec + f->offset, f->size));
			break;
		case ES_S:
			p = es_put_int(p, es_load_int(rec + f->offset, f->size));
			break;
		case ES_BOOL:
			p = es_put_u8(p, rec[f->offset] ? 0xc3 : 0xc2);
			break;
		case ES_OPTBOOL:
			/* 0 false, 1 true, anything else unknown (nil) */
			p = es_put_u8(p, rec[f->offset] == 0 ? 0xc2 : rec[f->offset] == 1 ? 0xc3 : 0xc0);
			break;
		case ES_CSTR:
			p = es_put_str(p, (const char *)rec + f->offset,
				       (uint32_t)strnlen((const char *)rec + f->offset, f->size));
			break;
		case ES_BYTES:
			/* a fixed __u8 array (an address): a msgpack bin, all of it */
			p = es_put_strhdr(p, f->size, 0, 0xc4, 0xc5, 0xc6);
			memcpy(p, rec + f->offset, f->size);
			p += f->size;
			break;
		case ES_TAIL_STR: {
			uint32_t n = (uint32_t)es_load_uint(rec + f->offset, 4);
			p = es_put_str(p, (const char *)rec + tail, es_trim(rec + tail, n));
			tail += n;
			break;
		}
		case ES_TAIL_STRLIST: {
			/* NUL-separated items, the last one NUL-terminated unless
			 * truncated: drop one terminator, keep empty items */
			uint32_t n = (uint32_t)es_load_uint(rec + f->offset, 4);
			uint32_t len = n && rec[tail + n - 1] == 0 ? n - 1 : n;
			uint32_t items = 0, j, start;

			for (j = 0; j < len; j++)
				items += rec[tail + j] == 0;
			if (n)
				items++;
			p = es_put_strhdr(p, items, 0x90, 0, 0xdc, 0xdd);
			for (j = 0, start = 0; n && j <= len; j++) {
				if (j == len || rec[tail + j] == 0) {
					p = es_put_str(p, (const char *)rec + tail + start, j - start);
					start = j + 1;
				}
			}
			tail += n;
			break;
		}
		}
	}
	c->len = (size_t)(p - c->buf);
	if (type < ES_MAX_TYPES)
		c->delivered[type]++;
	return 0;
}

/* c->reserve is the most one record can take, computed in Python */
int es_transcode(struct es_consumer *c, const void *data, size_t size)
{
	if (c->len + c->reserve > c->cap || c->len + size + 8 > c->cap)
		return ES_BATCH_FULL;
	if (es_put_record(c, data, (uint32_t)size))
		es_put_raw(c, data, (uint32_t)size);
	c->count++;
	if (c->count >= c->max_count || c->len + c->reserve > c->cap)
		return ES_BATCH_FULL;
	return 0;
}

static int es_sample(void *ctx, void *data, size_t size)
{
	/* libbpf has already consumed this record: it must be stored, so
	 * "full" is only ever reported after storing one */
	struct es_consumer *c = ctx;

	if (es_put_record(c, data, (uint32_t)size))
		es_put_raw(c, data, (uint32_t)size);
	c->count++;
	if (c->count >= c->max_count || c->len + c->reserve > c->cap)
		return ES_BATCH_FULL;
	return 0;
}

struct ring_buffer *es_ring_new(struct es_consumer *c, int map_fd)
{
	return ring_buffer__new(map_fd, es_sample, c, NULL);
}

int es_ring_add(struct es_consumer *c, int map_fd)
{
	return ring_buffer__add(c->rb, map_fd, es_sample, c);
}

/* a batch is a msgpack array32 whose count is patched in at the end */
void es_batch_begin(struct es_consumer *c)
{
	c->len = 5;
	c->count = 0;
}

size_t es_batch_end(struct es_consumer *c)
{
	c->buf[0] = 0xdd;
	es_put_be32(c->buf + 1, c->count);
	return c->len;
}

/* wait up to timeout_ms for a wakeup, then drain every ring: records are
 * submitted without wakeups, so a ring may hold data without having signalled */
int es_poll(struct es_consumer *c, int timeout_ms)
{
	int err = 0;

	if (timeout_ms != 0)
		err = ring_buffer__poll(c->rb, timeout_ms);
	if (err >= 0 && c->count < c->max_count && c->len + c->reserve <= c->cap)
		err = ring_buffer__consume(c->rb);
	if (err == ES_BATCH_FULL || err >= 0)
		return (int)c->count;
	return err;
}

int es_consume(struct es_consumer *c)
{
	return es_poll(c, 0);
}
"""

# libbpf's only symbol newer than glibc 2.17 is fmemopen@GLIBC_2.22 (reading
# an in-memory Kconfig, bpf_object_open_opts.kconfig); on its own it would
# raise the wheel to manylinux_2_24. The link routes every fmemopen call to
# this read-only version over fopencookie, which glibc has had since 2.2.
_FMEMOPEN_CDEF = """
long es_memfile_read(const char *buf, size_t size, char *out, size_t out_size);
"""

_FMEMOPEN_C = r"""
#include <stdlib.h>

struct es_memfile {
	const char *buf;
	size_t size, pos;
};

static ssize_t es_memfile_io_read(void *cookie, char *out, size_t n)
{
	struct es_memfile *m = cookie;

	if (n > m->size - m->pos)
		n = m->size - m->pos;
	memcpy(out, m->buf + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static int es_memfile_io_close(void *cookie)
{
	free(cookie);
	return 0;
}

__attribute__((visibility("hidden"))) FILE *__wrap_fmemopen(void *buf, size_t size, const char *mode)
{
	cookie_io_functions_t io = { .read = es_memfile_io_read, .close = es_memfile_io_close };
	struct es_memfile *m;
	FILE *f;

	/* libbpf only reads; refuse what this version does not do */
	if (!buf || strcmp(mode, "r") != 0) {
		errno = EINVAL;
		return NULL;
	}
	m = malloc(sizeof(*m));
	if (!m)
		return NULL;
	m->buf = buf;
	m->size = size;
	m->pos = 0;
	f = fopencookie(m, "r", io);
	if (!f)
		free(m);
	return f;
}

/* for tests: read a buffer back through fmemopen, as libbpf does */
long es_memfile_read(const char *buf, size_t size, char *out, size_t out_size)
{
	FILE *f = fmemopen((void *)buf, size, "r");
	size_t n;

	if (!f)
		return -errno;
	n = fread(out, 1, out_size, f);
	fclose(f);
	return (long)n;
}
"""


def records_cdef() -> str:
    """The cdef zone of events.h."""
    text = EVENTS_H.read_text()
    m = re.search(r"/\* cdef-begin \*/(.*)/\* cdef-end \*/", text, re.S)
    if not m:
        raise SystemExit(f"build_ext: no cdef-begin/cdef-end zone in {EVENTS_H}")
    return m.group(1)


def ensure_deps() -> None:
    """Build the static libraries when they are missing (a no-op otherwise)."""
    if not (DEPS / "lib" / "libbpf.a").exists():
        if "EBPFSENSOR_DEPS" in os.environ:
            raise SystemExit(f"build_ext: EBPFSENSOR_DEPS={DEPS} has no lib/libbpf.a (tools/build-deps.sh {ARCH})")
        subprocess.run(["bash", str(ROOT / "tools" / "build-deps.sh"), ARCH], check=True)


ffi = FFI()
ffi.cdef(_FIXED_TYPES + records_cdef() + _LIBBPF_CDEF + _CONSUMER_DECLS + _CONSUMER_CDEF + _FMEMOPEN_CDEF)
ffi.set_source(
    "ebpfsensor._libbpf",
    '#include <bpf/libbpf.h>\n#include <bpf/bpf.h>\n#include "events.h"\n'
    + _CONSUMER_DECLS
    + _CONSUMER_C
    + _FMEMOPEN_C,
    include_dirs=[str(DEPS / "include"), str(ROOT / "bpf_src")],
    extra_objects=[str(DEPS / "lib" / name) for name in ("libbpf.a", "libelf.a", "libz.a")],
    # keep libbpf's symbols private: another libbpf in the process must not
    # clash; and send libbpf's fmemopen to __wrap_fmemopen (see _FMEMOPEN_C)
    extra_link_args=["-Wl,--exclude-libs,ALL", "-Wl,--wrap=fmemopen"],
    extra_compile_args=["-O2", "-Wall", "-Wno-unused-function"],
    py_limited_api=True,
)

if __name__ == "__main__":
    # an in-place build for development (`make ext`); wheels go through setup.py
    import shutil

    ensure_deps()
    tmp = ROOT / "build" / "ext" / ARCH
    tmp.mkdir(parents=True, exist_ok=True)
    built = ffi.compile(tmpdir=str(tmp), verbose=bool(os.environ.get("V")))
    shutil.copy2(built, ROOT / "python" / "ebpfsensor" / Path(built).name)
