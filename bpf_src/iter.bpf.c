// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The process table's start-up snapshot: a task iterator (iter/task, 5.8)
 * writes one struct task_iter_record per process into its seq_file, which
 * user space reads once from the iterator's fd, after the rings are
 * attached. Every field comes from the kernel's own task, read the way the
 * lifecycle records read theirs (the start time is their key), with no
 * /proc file to race.
 *
 * Two variants, run by user space, never attached to a hook: iter_s, a
 * sleepable iterator (5.18), also copies argv out of the process's memory
 * (bpf_copy_from_user_task); iter leaves argv to /proc/PID/cmdline.
 *
 * Like the lifecycle hooks reading a parent's image, the iterator reads
 * other tasks' mm and fs without their locks: a process exiting while it
 * is read may show a partial record; its exit event, in the ring attached
 * before the snapshot, marks it exited.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "events.h"
/* only task.bpf.h's path walk: the sensor's rings and exclusion maps, which
 * maps.bpf.h and filter.bpf.h define, would otherwise be created with this
 * object (20 MiB of rings for one snapshot) */
#define EBPFSENSOR_MAPS_BPF_H
#define EBPFSENSOR_FILTER_BPF_H
#include "compat.bpf.h"
#include "task.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ARGV_MASK (ARGV_LEN - 1)
#define PROCTITLE_MASK 4095 /* what /proc reads of a title: a page (4 KiB here), its NUL included */

/* a record and its tail, too large for the BPF stack */
struct iter_buf {
	struct task_iter_record rec;
	char exe[PATH_LEN];
	char cwd[PATH_LEN];
	char argv[ARGV_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct iter_buf);
} iter_scratch SEC(".maps");

static __always_inline int emit(struct seq_file *seq, struct task_struct *task, int with_argv)
{
	__u32 zero = 0, len;
	struct iter_buf *b = bpf_map_lookup_elem(&iter_scratch, &zero);
	struct task_struct *leader;
	struct task_iter_record *r;
	const struct cred *cred;
	struct tty_struct *tty;
	struct fs_struct *fs;
	struct mm_struct *mm;
	struct file *file;
	unsigned long arg_start, arg_end, env_end;
	__u64 title;
	struct pid *sid;
	char last;

	if (!b || !task)
		return 0;
	/* one record per process: its leader's, or, once the leader has
	 * exited (its mm gone, the process living on in other threads), each
	 * other thread's with an mm; user space keeps one */
	leader = BPF_CORE_READ(task, group_leader);
	mm = BPF_CORE_READ(task, mm);
	if (task != leader && (BPF_CORE_READ(leader, mm) || !mm))
		return 0;
	r = &b->rec;
	r->pid = BPF_CORE_READ(task, tgid);
	r->tid = BPF_CORE_READ(task, pid);
	r->ppid = BPF_CORE_READ(leader, real_parent, tgid);
	/* the key the lifecycle records carry (fill_task_ctx) */
	r->start_time_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	r->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	r->kernel_thread = (BPF_CORE_READ(leader, flags) & PF_KTHREAD) != 0;
	/* signal->live drops to zero when the last thread exits */
	r->exited = BPF_CORE_READ(task, signal, live.counter) == 0;
	sid = BPF_CORE_READ(task, signal, pids[PIDTYPE_SID]);
	r->sid = sid ? BPF_CORE_READ(sid, numbers[0].nr) : 0;

	cred = BPF_CORE_READ(task, real_cred);
	r->uid = BPF_CORE_READ(cred, uid.val);
	r->euid = BPF_CORE_READ(cred, euid.val);
	r->gid = BPF_CORE_READ(cred, gid.val);
	r->egid = BPF_CORE_READ(cred, egid.val);
	r->loginuid = (__u32)-1;
	r->sessionid = (__u32)-1;
	if (bpf_core_field_exists(task->loginuid)) {
		r->loginuid = BPF_CORE_READ(leader, loginuid.val);
		r->sessionid = BPF_CORE_READ(leader, sessionid);
	}
	/* zeroed: the scratch buffer holds the last record's strings */
	__builtin_memset(r->comm, 0, sizeof(r->comm));
	__builtin_memset(r->tty, 0, sizeof(r->tty));
	bpf_probe_read_kernel_str(r->comm, sizeof(r->comm), &leader->comm);
	tty = BPF_CORE_READ(task, signal, tty);
	if (tty)
		bpf_probe_read_kernel_str(r->tty, sizeof(r->tty), &tty->name);

	r->exe_len = r->cwd_len = r->argv_len = 0;
	r->exe_memfd = r->exe_deleted = r->exe_truncated = r->cwd_truncated = 0;
	r->argv_truncated = r->argv_read = r->argv_title = 0;
	__builtin_memset(r->_pad0, 0, sizeof(r->_pad0));
	/* kernel threads borrow an mm at times: theirs are not processes' images */
	if (mm && !r->kernel_thread) {
		file = BPF_CORE_READ(mm, exe_file);
		if (file) {
			r->exe_deleted = BPF_CORE_READ(file, f_inode, __i_nlink) == 0;
			r->exe_memfd = is_memfd(BPF_CORE_READ(file, f_path.dentry));
			r->exe_len = append_path(b->exe, &file->f_path, &r->exe_truncated);
		}
		fs = BPF_CORE_READ(task, fs);
		if (fs)
			r->cwd_len = append_path(b->cwd, &fs->pwd, &r->cwd_truncated);
		arg_start = BPF_CORE_READ(mm, arg_start);
		arg_end = BPF_CORE_READ(mm, arg_end);
		len = arg_end > arg_start ? arg_end - arg_start : 0;
		if (len > ARGV_MASK) {
			len = ARGV_MASK;
			r->argv_truncated = 1;
		}
		/* the bytes /proc/PID/cmdline gives */
		if (with_argv && bpf_copy_from_user_task(b->argv, len & ARGV_MASK, (void *)arg_start, task, 0) == 0) {
			r->argv_len = len & ARGV_MASK;
			r->argv_read = 1;
		}
		/* the area's last byte: setproctitle() wrote past it when it is not
		 * a NUL, into the environment; /proc then gives the string at the
		 * area's start, within a page. Read to the environment's end, where
		 * the stack may end too (a copy that faults copies nothing) */
		last = 0;
		if (with_argv && r->argv_read && len)
			last = r->argv_truncated ? 0 : b->argv[(len - 1) & ARGV_MASK];
		if (with_argv && r->argv_read && r->argv_truncated)
			bpf_copy_from_user_task(&last, 1, (void *)(arg_end - 1), task, 0);
		if (last) {
			env_end = BPF_CORE_READ(mm, env_end);
			title = env_end > arg_start ? env_end - arg_start : 0;
			if (title > PROCTITLE_MASK)
				title = PROCTITLE_MASK;
			r->argv_title = 1;
			r->argv_len = 0;
			r->argv_read = bpf_copy_from_user_task(b->argv, title & PROCTITLE_MASK, (void *)arg_start, task, 0) == 0;
			if (r->argv_read)
				r->argv_len = title & PROCTITLE_MASK;
		}
	}
	r->size = sizeof(*r) + r->exe_len + r->cwd_len + r->argv_len;
	bpf_seq_write(seq, r, sizeof(*r));
	bpf_seq_write(seq, b->exe, r->exe_len & PATH_MASK);
	bpf_seq_write(seq, b->cwd, r->cwd_len & PATH_MASK);
	bpf_seq_write(seq, b->argv, r->argv_len & ARGV_MASK);
	return 0;
}

SEC("iter.s/task")
int handle_task_iter_s(struct bpf_iter__task *ctx)
{
	return emit(ctx->meta->seq, ctx->task, 1);
}

SEC("iter/task")
int handle_task_iter(struct bpf_iter__task *ctx)
{
	return emit(ctx->meta->seq, ctx->task, 0);
}
