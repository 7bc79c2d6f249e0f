// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Benchmark producers, run with BPF_PROG_TEST_RUN and never attached.
 *
 * handle_bench_raw: each run submits cfg_records records into the lifecycle
 * ring, small (fork) or large (exec with paths and argv), so a consumer can
 * be timed on a full ring.
 *
 * handle_ctx_raw: each run submits cfg_records file_open records into the
 * activity ring, from cfg_procs processes (pid 1000 + k, started at
 * 1 s + pid, parent pid 1) that the process-context benchmark puts in a
 * process table, so that the consumer is timed with and without context.
 *
 * handle_flood_raw: a socket filter (the name only follows the loader's
 * handle_<hook>_<variant> rule), because skb test runs take a repeat count
 * at no fixed cost (XDP's swap the XDP dispatcher, two RCU grace periods
 * per call): one test-run call with repeat=K submits K file_open records into the
 * activity ring at kernel speed, counted in kind_stats like the real
 * file_open records (produced, or dropped when the ring is full). The
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

static const char flood_tail[] = "/usr/lib/x86_64-linux-gnu/libc.so.6" "libc.so.6";
#define FLOOD_PATH_LEN 35
#define FLOOD_ARG_PATH_LEN 9

struct flood_open {
	struct file_open_event ev;
	char tail[sizeof(flood_tail) - 1];
	char _pad[(8 - (sizeof(flood_tail) - 1) % 8) % 8];
};

SEC("socket")
int handle_flood_raw(struct __sk_buff *skb)
{
	struct flood_open *e = bpf_ringbuf_reserve(&activity_events, sizeof(*e), 0);

	if (!e) {
		stat_inc(EVENT_FILE_OPEN, STAT_DROPPED);
		return 0;
	}
	__builtin_memset(&e->ev, 0, sizeof(e->ev));
	e->ev.hdr.type = EVENT_FILE_OPEN;
	e->ev.hdr.size = sizeof(*e);
	e->ev.hdr.ts_ns = bpf_ktime_get_boot_ns();
	e->ev.task.pid = bpf_get_smp_processor_id() + 1;
	e->ev.task.tid = e->ev.task.pid;
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
	stat_inc(EVENT_FILE_OPEN, STAT_PRODUCED);
	bpf_ringbuf_submit(e, wakeup_flags(&activity_events, sizeof(*e)));
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
		__builtin_memset(&e->ev, 0, sizeof(e->ev));
		e->ev.hdr.type = EVENT_FILE_OPEN;
		e->ev.hdr.size = sizeof(*e);
		e->ev.hdr.ts_ns = bpf_ktime_get_boot_ns();
		e->ev.task.pid = pid;
		e->ev.task.tid = pid;
		e->ev.task.ppid = 1;
		e->ev.task.start_time_ns = 1000000000ULL + pid;
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
		bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	}
	return 0;
}
