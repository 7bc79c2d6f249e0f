# SPDX-License-Identifier: Apache-2.0
"""A bench-only cffi module, built at bench time into build/bench/: the C
pieces the benchmarks compare against or drive, none of them shipped.

- ``bc_drain``: the practical limit of delivery, a pure C consumer of a ring
  (libbpf ``ring_buffer__consume`` with a C callback that counts the records
  and reads one word per cache line), optionally copying the raw records out.
- ``bc_perf_open`` / ``bc_perf_drain`` / ``bc_perf_close``: the same for a
  perf event array, with the buffers opened as the sensor opens them
  (``perf_buffer__new_raw``, a wakeup watermark) and the same callback on
  each sample; lost-record reports are counted. The buffers must be open
  before the records are written (a perf event array's slot is empty until
  then), so opening and draining are apart.
- ``bc_transcode``: feeds copied records to the shipped transcoder
  (``es_transcode``, by address) without a ring, to time the decode step alone.
- ``bc_test_run``: one skb test run (a zeroed 64-byte packet) with a repeat
  count, on the calling CPU unless the kernel moves the thread (callers pin).
- ``bc_produce``: a paced producer. It runs a socket filter with
  ``BPF_PROG_TEST_RUN`` and ``repeat`` = records per call, so each call
  submits that many records at kernel speed, and sleeps between calls to
  hold a target rate. It runs without the GIL (cffi releases it).

Linked against the same static libbpf as the extension, with its symbols
kept private.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from cffi import FFI

CDEF = """
struct bc_drain {
    uint64_t records; uint64_t bytes; uint64_t sum; uint64_t ns;
    uint8_t *copy; size_t cap; size_t len; uint64_t lost;
};
int bc_drain(int map_fd, struct bc_drain *d);
void *bc_perf_open(int map_fd, size_t pages, uint32_t wakeup_bytes, struct bc_drain *d);
int bc_perf_drain(void *pb, struct bc_drain *d);
void bc_perf_close(void *pb);
size_t bc_transcode(uintptr_t fn, uintptr_t consumer, const uint8_t *buf, size_t len, size_t pos, uint64_t *ns);

struct bc_produce {
    int prog_fd; uint32_t per_call; double rate; double seconds;
    volatile int stop;
    uint64_t calls; uint64_t records; double elapsed; double max_behind_s;
    int err;
};
int bc_produce(struct bc_produce *p);
int bc_test_run(int prog_fd, uint32_t repeat);
"""

SOURCE = r"""
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <linux/perf_event.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>

struct bc_drain {
	uint64_t records, bytes, sum, ns;
	uint8_t *copy;
	size_t cap, len;
	uint64_t lost;
};

struct bc_produce {
	int prog_fd;
	uint32_t per_call;
	double rate, seconds;
	volatile int stop;
	uint64_t calls, records;
	double elapsed, max_behind_s;
	int err;
};

static double bc_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t bc_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + t.tv_nsec;
}

/* count and touch (one 8-byte load per cache line, so every line is read);
 * copies are stored as [u32 size][u32 0][record, padded to 8 bytes] */
static int bc_sample(void *ctx, void *data, size_t size)
{
	struct bc_drain *d = ctx;
	const uint8_t *p = data;
	uint64_t v;
	size_t off;

	for (off = 0; off + 8 <= size; off += 64) {
		memcpy(&v, p + off, 8);
		d->sum += v;
	}
	d->records++;
	d->bytes += size;
	if (d->copy) {
		uint32_t hdr[2] = { (uint32_t)size, 0 };

		if (d->len + 8 + size + 8 > d->cap)
			return -ENOSPC;
		memcpy(d->copy + d->len, hdr, 8);
		memcpy(d->copy + d->len + 8, p, size);
		d->len += 8 + ((size + 7) & ~(size_t)7);
	}
	return 0;
}

/* drain what the ring holds now; d->ns is the time in ring_buffer__consume */
int bc_drain(int map_fd, struct bc_drain *d)
{
	struct ring_buffer *rb = ring_buffer__new(map_fd, bc_sample, d, NULL);
	uint64_t t;
	int n;

	if (!rb)
		return -errno;
	t = bc_ns();
	n = ring_buffer__consume(rb);
	d->ns += bc_ns() - t;
	ring_buffer__free(rb);
	return n;
}

struct bc_perf_sample {
	struct perf_event_header header;
	uint32_t size;
	uint8_t data[];
};

struct bc_perf_lost {
	struct perf_event_header header;
	uint64_t id, lost;
};

/* a perf buffer's records: samples as bc_sample takes a ring's (the size
 * includes the kernel's padding to 8 bytes), lost-record reports counted */
static enum bpf_perf_event_ret bc_perf_event(void *ctx, int cpu, struct perf_event_header *ev)
{
	struct bc_drain *d = ctx;

	(void)cpu;
	if (ev->type == PERF_RECORD_LOST)
		d->lost += ((struct bc_perf_lost *)ev)->lost;
	else if (ev->type == PERF_RECORD_SAMPLE)
		bc_sample(d, ((struct bc_perf_sample *)ev)->data, ((struct bc_perf_sample *)ev)->size);
	return LIBBPF_PERF_EVENT_CONT;
}

/* one buffer of pages per CPU in the array's slots, opened as the sensor
 * opens its own (csrc/perf.c); NULL with errno set on failure */
void *bc_perf_open(int map_fd, size_t pages, uint32_t wakeup_bytes, struct bc_drain *d)
{
	struct perf_event_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_BPF_OUTPUT;
	attr.sample_type = PERF_SAMPLE_RAW;
	attr.sample_period = 1;
	attr.watermark = 1;
	attr.wakeup_watermark = wakeup_bytes;
	return perf_buffer__new_raw(map_fd, pages, &attr, bc_perf_event, d, NULL);
}

/* drain what every CPU buffer holds now; d->ns is the time in perf_buffer__consume */
int bc_perf_drain(void *pb, struct bc_drain *d)
{
	uint64_t t = bc_ns();
	int n = perf_buffer__consume(pb);

	d->ns += bc_ns() - t;
	return n;
}

void bc_perf_close(void *pb)
{
	perf_buffer__free(pb);
}

#define BC_BATCH_FULL -28 /* ES_BATCH_FULL in the extension */
typedef int (*bc_transcode_fn)(void *c, const void *data, size_t size);

/* feed copied records from pos to the transcoder until it reports a full
 * batch (the record that filled it is stored); returns the next position */
size_t bc_transcode(uintptr_t fn, uintptr_t consumer, const uint8_t *buf, size_t len, size_t pos, uint64_t *ns)
{
	bc_transcode_fn transcode = (bc_transcode_fn)fn;
	uint64_t t = bc_ns();

	while (pos + 8 <= len) {
		uint32_t size;
		int rc;

		memcpy(&size, buf + pos, 4);
		rc = transcode((void *)consumer, buf + pos + 8, size);
		pos += 8 + ((size + 7) & ~(size_t)7);
		if (rc == BC_BATCH_FULL)
			break;
	}
	*ns += bc_ns() - t;
	return pos;
}

/* one test run of an skb program, repeat times; 0 or -errno */
int bc_test_run(int prog_fd, uint32_t repeat)
{
	uint8_t pkt[64] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = sizeof(pkt), .repeat = repeat);

	return bpf_prog_test_run_opts(prog_fd, &opts) ? -errno : 0;
}

/* records at p->rate for p->seconds (or until p->stop): a call makes
 * p->per_call records, then the thread sleeps until the rate allows the next */
int bc_produce(struct bc_produce *p)
{
	uint8_t pkt[64] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = sizeof(pkt), .repeat = p->per_call);
	double t0 = bc_now(), now;

	p->err = 0;
	while (!p->stop) {
		double due;

		now = bc_now() - t0;
		if (now >= p->seconds)
			break;
		due = (double)p->records / p->rate;
		if (due > now) {
			struct timespec ts;
			double wait = due - now;

			ts.tv_sec = (time_t)wait;
			ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
			nanosleep(&ts, NULL);
			continue;
		}
		if (now - due > p->max_behind_s)
			p->max_behind_s = now - due;
		if (bpf_prog_test_run_opts(p->prog_fd, &opts)) {
			p->err = errno;
			break;
		}
		p->calls++;
		p->records += p->per_call;
	}
	p->elapsed = bc_now() - t0;
	return p->err ? -p->err : 0;
}
"""


def load(root: Path, out: Path, arch: str) -> ModuleType:
    """Build the module when its source changed, then import it.

    Returns:
        The compiled module (``.ffi``, ``.lib``).
    """
    deps = (root / "build" / "deps" / arch).resolve()
    tag = hashlib.sha256((CDEF + SOURCE + str(deps)).encode()).hexdigest()[:12]
    name = f"_cbench_{tag}"
    tmp = out / "cbench"
    built = next(tmp.glob(f"{name}.*so"), None) if tmp.exists() else None
    if built is None:
        ffi = FFI()
        ffi.cdef(CDEF)
        ffi.set_source(
            name,
            SOURCE,
            include_dirs=[str(deps / "include")],
            extra_objects=[str(deps / "lib" / lib) for lib in ("libbpf.a", "libelf.a", "libz.a")],
            extra_link_args=["-Wl,--exclude-libs,ALL"],
            extra_compile_args=["-O2", "-Wall"],
        )
        built = Path(ffi.compile(tmpdir=str(tmp)))
    spec = importlib.util.spec_from_file_location(name, built)
    if spec is None or spec.loader is None:
        raise SystemExit(f"bench: cannot import {built}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
