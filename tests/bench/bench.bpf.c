// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Benchmark producers, run with BPF_PROG_TEST_RUN and never attached. Built
 * twice, as the sensor's objects are: bench.bpf.o (ring buffers) and
 * bench.perf.bpf.o (-DES_PERFBUF: perf event arrays, records built in a
 * per-CPU scratch and copied out by es_submit).
 *
 * handle_bench_raw (ring buffers only): each run submits cfg_records
 * records into the lifecycle ring, small (fork) or large (exec with paths
 * and argv), so a consumer can be timed on a full ring.
 *
 * handle_ctx_raw (ring buffers only): each run submits cfg_records
 * file_open records into the activity ring, from cfg_procs processes
 * (pid 1000 + k, started at 1 s + pid, parent pid 1) that the
 * process-context benchmark puts in a process table, so that the consumer
 * is timed with and without context.
 *
 * handle_fill_raw: one record per run, fork or exec as handle_bench_raw's,
 * into the lifecycle map of either transport. A tc classifier, run with a
 * repeat count: the transport benchmark fills with it on every kernel
 * (raw tracepoint test runs are 5.10; tc test runs take a repeat count on
 * every kernel, and a tc program may call the perf output helper, which a
 * socket filter may not). A test run executes on the calling CPU, and a
 * perf record goes to that CPU's buffer: the caller pins itself.
 *
 * handle_flood_raw: a tc classifier (the name only follows the loader's
 * handle_<hook>_<variant> rule; tc for the reasons above, and because skb
 * test runs take a repeat count at no fixed cost: XDP's swap the XDP
 * dispatcher, two RCU grace periods per call): one test-run call with
 * repeat=K submits K file_open records into the activity map at kernel
 * speed, counted in kind_stats like the real file_open records (produced,
 * or dropped when the ring or the CPU's perf buffer is full). The
 * sustained-rate benchmark shares the sensor's maps with it.
 */
#include "maps.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 cfg_records = 64;
const volatile __u8 cfg_large = 0;
const volatile __u32 cfg_procs = 1000;
static const char exec_tail[] = "/usr/bin/true/tmp/work/usr/bin/bash"
				"/usr/bin/true\0--verbose\0--output=/var/log/x\0a-longer-argument-value\0";
#define EXE_LEN 13
#define CWD_LEN 9
#define PEXE_LEN 13

struct bench_exec {
	struct exec_event ev;
	char tail[sizeof(exec_tail)];
};

static const char flood_tail[] = "/usr/lib/x86_64-linux-gnu/libc.so.6" "libc.so.6";
#define FLOOD_PATH_LEN 35
#define FLOOD_ARG_PATH_LEN 9

struct flood_open {
	struct file_open_event ev;
	char tail[sizeof(flood_tail) - 1];
	char _pad[(8 - (sizeof(flood_tail) - 1) % 8) % 8];
};

#ifdef ES_PERFBUF
/* where a record is built before es_submit copies it into the perf buffer */
union bench_record {
	struct bench_exec exec;
	struct fork_event fork;
	struct flood_open open;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union bench_record);
} bench_record SEC(".maps");
#endif

static __always_inline void fill_exec(struct bench_exec *e, __u32 pid)
{
	__builtin_memset(&e->ev, 0, sizeof(e->ev));
	e->ev.hdr.type = EVENT_EXEC;
	e->ev.hdr.size = sizeof(*e);
	e->ev.hdr.ts_ns = ES_NOW();
	e->ev.task.pid = pid;
	e->ev.task.tid = pid;
	e->ev.task.comm[0] = 'b';
	e->ev.exe_len = EXE_LEN;
	e->ev.cwd_len = CWD_LEN;
	e->ev.parent_exe_len = PEXE_LEN;
	e->ev.argv_len = sizeof(exec_tail) - EXE_LEN - CWD_LEN - PEXE_LEN;
	__builtin_memcpy(e->tail, exec_tail, sizeof(exec_tail));
}

static __always_inline void fill_fork(struct fork_event *e, __u32 pid)
{
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.type = EVENT_FORK;
	e->hdr.size = sizeof(*e);
	e->hdr.ts_ns = ES_NOW();
	e->task.pid = pid;
	e->child_pid = pid + 1;
	e->task.comm[0] = 'b';
}

static __always_inline void fill_open(struct flood_open *e, __u32 pid)
{
	__builtin_memset(&e->ev, 0, sizeof(e->ev));
	e->ev.hdr.type = EVENT_FILE_OPEN;
	e->ev.hdr.size = sizeof(*e);
	e->ev.hdr.ts_ns = ES_NOW();
	e->ev.task.pid = pid;
	e->ev.task.tid = pid;
	e->ev.task.comm[0] = 'b';
	e->ev.sys.result = 3;
	e->ev.sys.syscall_nr = 257;
	e->ev.ino = 42;
	e->ev.dirfd = FILE_AT_FDCWD;
	e->ev.resolved = 1;
	e->ev.path_len = FLOOD_PATH_LEN;
	e->ev.arg_path_len = FLOOD_ARG_PATH_LEN;
	__builtin_memcpy(e->tail, flood_tail, sizeof(e->tail));
	__builtin_memset(e->_pad, 0, sizeof(e->_pad));
}

#ifndef ES_PERFBUF
SEC("raw_tp")
int handle_bench_raw(void *ctx)
{
	__u32 i;

	for (i = 0; i < 4096 && i < cfg_records; i++) {
		if (cfg_large) {
			struct bench_exec *e = bpf_ringbuf_reserve(&lifecycle_events, sizeof(*e), 0);

			if (!e) {
				stat_inc(EVENT_EXEC, STAT_DROPPED);
				return 0;
			}
			fill_exec(e, i);
			bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
		} else {
			struct fork_event *e = bpf_ringbuf_reserve(&lifecycle_events, sizeof(*e), 0);

			if (!e) {
				stat_inc(EVENT_FORK, STAT_DROPPED);
				return 0;
			}
			fill_fork(e, i);
			bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
		}
	}
	return 0;
}

SEC("raw_tp")
int handle_ctx_raw(void *ctx)
{
	__u32 i;

	for (i = 0; i < 4096 && i < cfg_records; i++) {
		struct flood_open *e = bpf_ringbuf_reserve(&activity_events, sizeof(*e), 0);
		__u32 pid = 1000 + i % (cfg_procs ?: 1);

		if (!e) {
			stat_inc(EVENT_FILE_OPEN, STAT_DROPPED);
			return 0;
		}
		fill_open(e, pid);
		e->ev.task.ppid = 1;
		e->ev.task.start_time_ns = 1000000000ULL + pid;
		bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	}
	return 0;
}
#endif

SEC("tc")
int handle_fill_raw(struct __sk_buff *skb)
{
	__u32 pid = bpf_get_smp_processor_id() + 1;

	if (cfg_large) {
		struct bench_exec *e = es_reserve(&lifecycle_events, bench_record, EVENT_EXEC, sizeof(*e));

		if (!e)
			return 0;
		fill_exec(e, pid);
		es_submit(skb, &lifecycle_events, e, EVENT_EXEC, sizeof(*e));
	} else {
		struct fork_event *e = es_reserve(&lifecycle_events, bench_record, EVENT_FORK, sizeof(*e));

		if (!e)
			return 0;
		fill_fork(e, pid);
		es_submit(skb, &lifecycle_events, e, EVENT_FORK, sizeof(*e));
	}
	return 0;
}

SEC("tc")
int handle_flood_raw(struct __sk_buff *skb)
{
	struct flood_open *e = es_reserve(&activity_events, bench_record, EVENT_FILE_OPEN, sizeof(*e));

	if (!e)
		return 0;
	fill_open(e, bpf_get_smp_processor_id() + 1);
	es_submit(skb, &activity_events, e, EVENT_FILE_OPEN, sizeof(*e));
	return 0;
}
