/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Maps and helpers shared by every probe family. Only BPF code includes this. */
#ifndef EBPFSENSOR_MAPS_BPF_H
#define EBPFSENSOR_MAPS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "events.h"
#include "compat.bpf.h"

/*
 * Load-time settings, read through ES_CFG (compat.bpf.h). A ring is drained
 * by a consumer that polls at a bounded interval, so records are submitted
 * without waking it; only when cfg_wakeup_bytes wait is a wakeup forced, to
 * keep a burst from filling the ring between two polls. cfg_report_threads:
 * thread forks and exits are reported too.
 */
#ifdef ES_V419
/* no global data: the loader writes this map's one entry before attach */
struct es_settings {
	__u64 cfg_wakeup_bytes;
	__u8 cfg_report_threads;
	__u8 _pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct es_settings);
} settings SEC(".maps");
#else
const volatile __u64 cfg_wakeup_bytes = 256 * 1024;
const volatile __u8 cfg_report_threads = 0;
#endif

/*
 * Two transports, one source: the objects are built twice (see the
 * Makefile). By default records go through BPF ring buffers (5.8); built
 * with ES_PERFBUF they go through perf event arrays, one buffer per CPU,
 * for kernels without ring buffers. The perf helper needs the program's
 * context, so functions that submit records take it as their first
 * argument there (ES_CTX_PARAM / ES_CTX), and become static: a kernel
 * verifies a global function on its own, and cannot type a bare context
 * pointer passed to one. bpf_ktime_get_boot_ns is 5.8 too: there the
 * boot-time stamp is the monotonic clock plus boot time's lead.
 */
#ifdef ES_PERFBUF
#define ES_EVENTS_MAP(name)                                  \
	struct {                                             \
		__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); \
		__uint(key_size, sizeof(__u32));             \
		__uint(value_size, sizeof(__u32));           \
	} name SEC(".maps")
#else
#define ES_EVENTS_MAP(name)                           \
	struct {                                      \
		__uint(type, BPF_MAP_TYPE_RINGBUF);   \
		__uint(max_entries, 4 * 1024 * 1024); \
	} name SEC(".maps")
#endif

/* process lifecycle (exec, fork, exit) has its own ring: no flood of other
 * events can make these drop, and the process cache depends on them */
ES_EVENTS_MAP(lifecycle_events);

/* everything else (file, network, privilege events) */
ES_EVENTS_MAP(activity_events);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EVENT_TYPE_MAX);
	__type(key, __u32);
	__type(value, struct kind_stats);
} kind_stats SEC(".maps");

/* per event type, non-zero when the kind is collected; set by user space.
 * Hooks that serve several kinds check it before doing any work. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EVENT_TYPE_MAX);
	__type(key, __u32);
	__type(value, __u32);
} kind_enabled SEC(".maps");

static __always_inline int kind_on(__u32 type)
{
	__u32 *on = bpf_map_lookup_elem(&kind_enabled, &type);

	return on && *on;
}

enum stat_field {
	STAT_PRODUCED,
	STAT_DROPPED,
	STAT_TRUNCATED,
	STAT_FILTERED,
	STAT_DEDUPLICATED,
	STAT_UNMATCHED,
	STAT_UNWATCHED,
};

static __always_inline void stat_inc(__u32 type, enum stat_field field)
{
	struct kind_stats *s = bpf_map_lookup_elem(&kind_stats, &type);

	if (!s)
		return;
	switch (field) {
	case STAT_PRODUCED:
		s->produced++;
		break;
	case STAT_DROPPED:
		s->dropped++;
		break;
	case STAT_TRUNCATED:
		s->truncated++;
		break;
	case STAT_FILTERED:
		s->filtered++;
		break;
	case STAT_DEDUPLICATED:
		s->deduplicated++;
		break;
	case STAT_UNMATCHED:
		s->unmatched++;
		break;
	case STAT_UNWATCHED:
		s->unwatched++;
		break;
	}
}

#ifndef ES_PERFBUF
/*
 * Wake the consumer only when enough is waiting (see cfg_wakeup_bytes):
 * once each time the data waiting crosses a multiple of it. Not on every
 * record above it: a forced wakeup costs the submitting task an irq_work,
 * far more than the record itself, so a consumer that falls behind would
 * slow every monitored process down. Between crossings the consumer's own
 * bounded poll interval drains the ring. Configuration keeps
 * cfg_wakeup_bytes at least a page. (Perf buffers get the same rule from
 * their wakeup watermark, set by the consumer.)
 */
static __always_inline __u64 wakeup_flags(void *ring, __u64 size)
{
	__u64 waiting = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	__u64 every = ES_CFG(cfg_wakeup_bytes) ?: 1;

	/* waiting / every != (waiting + size) / every, with one division */
	if (waiting % every + size >= every)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}
#endif

/* submit a finished record of size bytes (bounded: ES_CLAMP) to one of the
 * two event maps; non-zero when it was dropped (the map is full) */
#ifdef ES_PERFBUF
#define es_output(ctx, ring, rec, size) bpf_perf_event_output(ctx, ring, BPF_F_CURRENT_CPU, rec, size)
#else
#define es_output(ctx, ring, rec, size) bpf_ringbuf_output(ring, rec, size, wakeup_flags(ring, size))
#endif

/*
 * A fixed-size record: reserved in the ring, or built in the object's
 * per-CPU scratch (any map of one entry large enough) and copied into the
 * perf buffer at submit; either way a record that cannot be written is
 * counted dropped under its kind.
 */
#ifdef ES_PERFBUF
#define es_reserve(ring, scratch, type, size) es_scratch(&(scratch))

static __always_inline void *es_scratch(void *map)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(map, &zero);
}

static __always_inline void es_submit(void *ctx, void *ring, void *e, __u32 type, __u32 size)
{
	if (es_output(ctx, ring, e, size)) {
		stat_inc(type, STAT_DROPPED);
		return;
	}
	stat_inc(type, STAT_PRODUCED);
}
#else
#define es_reserve(ring, scratch, type, size) es_ring_reserve(ring, type, size)

static __always_inline void *es_ring_reserve(void *ring, __u32 type, __u32 size)
{
	void *e = bpf_ringbuf_reserve(ring, size, 0); /* lint-ignore: callers submit */

	if (!e)
		stat_inc(type, STAT_DROPPED);
	return e;
}

static __always_inline void es_submit(void *ctx, void *ring, void *e, __u32 type, __u32 size)
{
	bpf_ringbuf_submit(e, wakeup_flags(ring, size));
	stat_inc(type, STAT_PRODUCED);
}
#endif

/* entries of the per-thread argument stashes (LRU hashes keyed by thread):
 * the threads that may be inside monitored syscalls at once before the
 * oldest calls' arguments are evicted (and those calls counted as unmatched) */
#define STASH_ENTRIES 16384

#endif /* EBPFSENSOR_MAPS_BPF_H */
