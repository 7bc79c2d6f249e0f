// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Benchmark producer: run with BPF_PROG_TEST_RUN, each run submits
 * cfg_records records into the lifecycle ring, small (fork) or large
 * (exec with paths and argv), so the consumer can be timed on a full ring.
 */
#include "maps.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 cfg_records = 64;
const volatile __u8 cfg_large = 0;
const volatile __u8 cfg_activity = 0; /* small records into the activity ring */

/* drops of the activity-ring producer, kept apart from kind_stats so the
 * lifecycle kinds' counters show only real processes */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} bench_counts SEC(".maps");

static __always_inline void bench_count(__u32 idx)
{
	__u64 *n = bpf_map_lookup_elem(&bench_counts, &idx);

	if (n)
		__sync_fetch_and_add(n, 1);
}

static const char exec_tail[] = "/usr/bin/true/tmp/work/usr/bin/bash"
				"/usr/bin/true\0--verbose\0--output=/var/log/x\0a-longer-argument-value\0";
#define EXE_LEN 13
#define CWD_LEN 9
#define PEXE_LEN 13

struct bench_exec {
	struct exec_event ev;
	char tail[sizeof(exec_tail)];
};

SEC("raw_tp")
int handle_bench_raw(void *ctx)
{
	__u32 i;

	for (i = 0; i < 4096 && i < cfg_records; i++) {
		if (cfg_activity) {
			struct fork_event *e = bpf_ringbuf_reserve(&activity_events, sizeof(*e), 0);

			if (!e) {
				bench_count(1); /* STAT_DROPPED, in the bench's own map */
				continue;
			}
			__builtin_memset(e, 0, sizeof(*e));
			e->hdr.type = EVENT_FORK;
			e->hdr.size = sizeof(*e);
			e->task.pid = i;
			bpf_ringbuf_submit(e, wakeup_flags(&activity_events, sizeof(*e)));
			bench_count(0);
		} else if (cfg_large) {
			struct bench_exec *e = bpf_ringbuf_reserve(&lifecycle_events, sizeof(*e), 0);

			if (!e) {
				stat_inc(EVENT_EXEC, STAT_DROPPED);
				return 0;
			}
			__builtin_memset(&e->ev, 0, sizeof(e->ev));
			e->ev.hdr.type = EVENT_EXEC;
			e->ev.hdr.size = sizeof(*e);
			e->ev.hdr.ts_ns = bpf_ktime_get_boot_ns();
			e->ev.task.pid = i;
			e->ev.task.tid = i;
			e->ev.task.comm[0] = 'b';
			e->ev.exe_len = EXE_LEN;
			e->ev.cwd_len = CWD_LEN;
			e->ev.parent_exe_len = PEXE_LEN;
			e->ev.argv_len = sizeof(exec_tail) - EXE_LEN - CWD_LEN - PEXE_LEN;
			__builtin_memcpy(e->tail, exec_tail, sizeof(exec_tail));
			bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
		} else {
			struct fork_event *e = bpf_ringbuf_reserve(&lifecycle_events, sizeof(*e), 0);

			if (!e) {
				stat_inc(EVENT_FORK, STAT_DROPPED);
				return 0;
			}
			__builtin_memset(e, 0, sizeof(*e));
			e->hdr.type = EVENT_FORK;
			e->hdr.size = sizeof(*e);
			e->hdr.ts_ns = bpf_ktime_get_boot_ns();
			e->task.pid = i;
			e->child_pid = i + 1;
			e->task.comm[0] = 'b';
			bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
		}
	}
	return 0;
}
