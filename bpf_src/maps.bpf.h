/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Maps and helpers shared by every probe family. Only BPF code includes this. */
#ifndef EBPFSENSOR_MAPS_BPF_H
#define EBPFSENSOR_MAPS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "events.h"

/*
 * Set by the loader before load. A ring is drained by a consumer that polls
 * at a bounded interval, so records are submitted without waking it; only
 * when this much data waits is a wakeup forced, to keep a burst from filling
 * the ring between two polls.
 */
const volatile __u64 cfg_wakeup_bytes = 256 * 1024;
const volatile __u8 cfg_report_threads = 0;

/* process lifecycle (exec, fork, exit) has its own ring: no flood of other
 * events can make these drop, and the process cache depends on them */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} lifecycle_events SEC(".maps");

/* everything else (file, network, privilege events) */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} activity_events SEC(".maps");

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

enum stat_field { STAT_PRODUCED, STAT_DROPPED, STAT_TRUNCATED, STAT_FILTERED, STAT_DEDUPLICATED, STAT_UNMATCHED };

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
	}
}

/*
 * Wake the consumer only when enough is waiting (see cfg_wakeup_bytes):
 * once each time the data waiting crosses a multiple of it. Not on every
 * record above it: a forced wakeup costs the submitting task an irq_work,
 * far more than the record itself, so a consumer that falls behind would
 * slow every monitored process down. Between crossings the consumer's own
 * bounded poll interval drains the ring. Configuration keeps
 * cfg_wakeup_bytes at least a page.
 */
static __always_inline __u64 wakeup_flags(void *ring, __u64 size)
{
	__u64 waiting = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
	__u64 every = cfg_wakeup_bytes ?: 1;

	if (waiting / every != (waiting + size) / every)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

/* entries of the per-thread argument stashes (LRU hashes keyed by thread):
 * the threads that may be inside monitored syscalls at once before the
 * oldest calls' arguments are evicted (and those calls counted as unmatched) */
#define STASH_ENTRIES 16384

#endif /* EBPFSENSOR_MAPS_BPF_H */
