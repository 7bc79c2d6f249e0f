// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Process lifecycle: exec, fork, exit. Each hook comes in three variants,
 * best first (tp_btf, raw_tp, tp); the loader keeps the first that loads
 * and attaches on the running kernel and disables the others.
 */
#include "task.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const struct exec_event *anchor_exec_event __attribute__((unused));
const struct fork_event *anchor_fork_event __attribute__((unused));
const struct exit_event *anchor_exit_event __attribute__((unused));

#define EXEC_POS_MASK (4 * PATH_LEN - 1) /* three paths fit below it */
#define ARGV_MASK (ARGV_LEN - 1)
/* the largest record: the event and its whole tail */
#define EXEC_MAX (sizeof(struct exec_event) + 4 * PATH_LEN + ARGV_LEN)

/* an exec record is too large for the BPF stack: built here, then copied
 * into the ring with its real size */
struct exec_buf {
	struct exec_event ev;
	char tail[4 * PATH_LEN + ARGV_LEN];
	__u64 number; /* map_number()'s; never output */
};

/*
 * A field (a chain, as BPF_CORE_READ() takes) of a kernel object reached
 * from the hook's task: in the tp_btf program (btf a constant 1) a direct
 * load, the task pointer being trusted BTF (the verifier makes every load
 * through it, and through the pointers loaded from it, fault-safe); a
 * bpf_probe_read_kernel() call each where the task is a number (raw_tp, tp,
 * and every variant of the perf builds, whose tp_btf program passes
 * EXEC_BTF 0).
 */
#define TREAD(btf, src, ...) ((btf) ? ___arrow(src, __VA_ARGS__) : BPF_CORE_READ(src, __VA_ARGS__))
#ifdef ES_PERFBUF
#define EXEC_BTF 0
#else
#define EXEC_BTF 1
#endif

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_buf);
} exec_scratch SEC(".maps");

/* a kernel pointer as a number where it is a direct load's (btf) */
static __always_inline __u64 as_number(struct exec_buf *b, const void *p, int btf)
{
	return btf ? map_number(&b->number, p) : (__u64)p;
}

static __always_inline __u32 task_pid_ns(struct exec_buf *b, struct task_struct *task, int btf)
{
	struct pid *pid = TREAD(btf, task, thread_pid);
	unsigned int level = TREAD(btf, pid, level);
	struct upid upid = {};
	__u64 at;

	/* the entry's address, a number, cast where the kernel can (task.bpf.h) */
	if (btf && PATH_DIRECT) {
		at = as_number(b, pid, btf) + bpf_core_field_offset(struct pid, numbers) +
		     (level & 31) * bpf_core_type_size(struct upid);
		return KREAD(struct upid, at, ns, ns.inum);
	}
	bpf_core_read(&upid, sizeof(upid), &pid->numbers[level & 31]);
	return BPF_CORE_READ(upid.ns, ns.inum);
}

/*
 * fill_task_ctx() of the exec'ing task: the parent's pid and the leader's
 * start time loaded directly through the trusted task pointer where btf
 * (4 helper reads otherwise); the same fields, from the same task.
 */
static __always_inline void exec_task_ctx(struct task_ctx *c, struct task_struct *task, const int btf)
{
	if (btf)
		task_ctx_direct(c, task);
	else
		fill_task_ctx(c, task);
}

/* fork and exit records: reserved in the ring, or built on a per-CPU
 * scratch record and copied into the perf buffer */
#ifdef ES_PERFBUF
union lifecycle_record {
	struct fork_event fork;
	struct exit_event exit;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union lifecycle_record);
} lifecycle_record SEC(".maps");

#endif

#define lifecycle_reserve(type, size) es_reserve(&lifecycle_events, lifecycle_record, type, size)
#define lifecycle_submit(ctx, e, type, size) es_submit(ctx, &lifecycle_events, e, type, size)

static __always_inline int handle_exec(void *ctx, struct task_struct *task, __u32 old_tid, const int btf)
{
	__u32 zero = 0, pos = 0, len, total;
	__u64 size;
	struct exec_buf *b = bpf_map_lookup_elem(&exec_scratch, &zero);
	struct task_struct *parent;
	struct exec_event *e;
	const struct cred *cred;
	struct tty_struct *tty;
	struct fs_struct *fs;
	struct mm_struct *mm;
	struct file *file;
	unsigned long arg_start, arg_end;

	exclusion_exec(task);
	if (!b || skip_event(EVENT_EXEC))
		return 0;
	e = &b->ev;
	e->hdr.ts_ns = ES_NOW();
	e->hdr.type = EVENT_EXEC;
	exec_task_ctx(&e->task, task, btf);
	e->old_tid = old_tid;

	cred = TREAD(btf, task, cred);
	e->euid = TREAD(btf, cred, euid.val);
	e->egid = TREAD(btf, cred, egid.val);
	e->suid = TREAD(btf, cred, suid.val);
	e->sgid = TREAD(btf, cred, sgid.val);
	e->fsuid = TREAD(btf, cred, fsuid.val);
	e->fsgid = TREAD(btf, cred, fsgid.val);
	e->user_ns = TREAD(btf, cred, user_ns, ns.inum);
	/* login uid and session exist only with CONFIG_AUDIT(SYSCALL) */
	e->loginuid = (__u32)-1;
	e->sessionid = (__u32)-1;
	if (bpf_core_field_exists(task->loginuid)) {
		e->loginuid = TREAD(btf, task, loginuid.val);
		e->sessionid = TREAD(btf, task, sessionid);
	}
	e->pid_ns = task_pid_ns(b, task, btf);
	e->mnt_ns = TREAD(btf, task, nsproxy, mnt_ns, ns.inum);
	e->net_ns = TREAD(btf, task, nsproxy, net_ns, ns.inum);

	e->tty[0] = '\0';
	tty = TREAD(btf, task, signal, tty);
	if (tty)
		bpf_probe_read_kernel_str(e->tty, sizeof(e->tty), &tty->name);
	parent = TREAD(btf, task, real_parent);
	if (btf) {
		/* the whole array in two loads (the consumer reads up to its NUL) */
		__u64 comm[2] = { ((const __u64 *)parent->comm)[0], ((const __u64 *)parent->comm)[1] };

		__builtin_memcpy(e->parent_comm, comm, sizeof(comm));
	} else {
		bpf_probe_read_kernel_str(e->parent_comm, sizeof(e->parent_comm), &parent->comm);
	}

	mm = TREAD(btf, task, mm);
	file = TREAD(btf, mm, exe_file);
	/* fileless execution: a memfd, or a file deleted before exec */
	e->exe_deleted = TREAD(btf, file, f_inode, __i_nlink) == 0;
	e->exe_memfd = is_memfd(TREAD(btf, file, f_path.dentry));
	e->_pad0[0] = e->_pad0[1] = 0;
	len = file ? append_path(&b->tail[ES_MASK(pos, EXEC_POS_MASK)],
				 (const struct path *)as_number(b, &file->f_path, btf), &e->exe_truncated)
		   : 0;
	e->exe_len = len;
	pos += len;

	fs = TREAD(btf, task, fs);
	len = append_path(&b->tail[ES_MASK(pos, EXEC_POS_MASK)], (const struct path *)as_number(b, &fs->pwd, btf),
			  &e->cwd_truncated);
	e->cwd_len = len;
	pos += len;

	/* kernel threads and exiting parents have no mm */
	file = TREAD(btf, parent, mm, exe_file);
	len = file ? append_path(&b->tail[ES_MASK(pos, EXEC_POS_MASK)],
				 (const struct path *)as_number(b, &file->f_path, btf), &e->parent_exe_truncated)
		   : 0;
	e->parent_exe_len = len;
	pos += len;

	/* the new image's arguments, as the kernel copied them to its stack */
	arg_start = TREAD(btf, mm, arg_start);
	arg_end = TREAD(btf, mm, arg_end);
	len = arg_end > arg_start ? arg_end - arg_start : 0;
	e->argv_truncated = 0;
	if (len > ARGV_MASK) {
		len = ARGV_MASK;
		e->argv_truncated = 1;
	}
	if (len && bpf_probe_read_user(&b->tail[ES_MASK(pos, EXEC_POS_MASK)], ES_MASK(len, ARGV_MASK),
				       (void *)arg_start)) {
		len = 0;
		e->argv_truncated = 1;
	}
	e->argv_len = len;
	pos += len;

	/* the three paths and argv fill up to the whole tail, beyond the mask
	 * that bounds where a part may start: the size must not wrap with it;
	 * 64-bit, so that the verifier sees the clamp on the register passed on */
	size = sizeof(*e) + (__u64)pos;
	if (size > EXEC_MAX)
		size = EXEC_MAX;
	total = size;
	e->hdr.size = total;
	if (e->argv_truncated || e->exe_truncated || e->cwd_truncated || e->parent_exe_truncated)
		stat_inc(EVENT_EXEC, STAT_TRUNCATED);
	if (es_output(ctx, &lifecycle_events, b, ES_CLAMP(size, EXEC_MAX))) {
		stat_inc(EVENT_EXEC, STAT_DROPPED);
		return 0;
	}
	stat_inc(EVENT_EXEC, STAT_PRODUCED);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return handle_exec(ctx, p, old_pid, EXEC_BTF);
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(handle_exec_raw, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return handle_exec(ctx, p, old_pid, 0);
}

SEC("tp/sched/sched_process_exec")
int handle_exec_tp(struct trace_event_raw_sched_process_exec *ctx)
{
	return handle_exec(ctx, (struct task_struct *)bpf_get_current_task(), ctx->old_pid, 0);
}

/*
 * bit where a != b (bit a power of two), with no branch: a branch per flag
 * makes the verifier walk every combination of flags, and computing them
 * without branches keeps the program small. All in asm: clang makes a
 * comparison and a branch of the C idiom, and a newer verifier splits its
 * state on "(-1 or 0) & bit" too; "(0 or 1) << shift" it keeps as one state.
 */
#define NE_BIT(a, b, bit)                                                       \
	({                                                                      \
		__u64 _x = (__u64)(a) ^ (__u64)(b), _m;                         \
		_Static_assert(((bit) & ((bit) - 1)) == 0, "one bit");          \
		asm volatile("%[m] = %[x]\n\t"                                  \
			     "%[m] = -%[m]\n\t"                                 \
			     "%[m] |= %[x]\n\t"                                 \
			     "%[m] >>= 63\n\t"                                  \
			     "%[m] <<= %[s]"                                    \
			     : [m] "=&r"(_m)                                    \
			     : [x] "r"(_x), [s] "i"(__builtin_ctzll(bit)));     \
		_m;                                                             \
	})
#define EQ_BIT(a, b, bit) (NE_BIT(a, b, bit) ^ (bit))

/* what the child shares with its parent tells most of the clone flags */
static __always_inline __u64 clone_flags(struct task_struct *parent, struct task_struct *child)
{
	struct nsproxy *pn = BPF_CORE_READ(parent, nsproxy);
	struct nsproxy *cn = BPF_CORE_READ(child, nsproxy);
	__u64 f = 0;

	f |= EQ_BIT(BPF_CORE_READ(child, mm), BPF_CORE_READ(parent, mm), FORK_CLONE_VM);
	f |= EQ_BIT(BPF_CORE_READ(child, fs), BPF_CORE_READ(parent, fs), FORK_CLONE_FS);
	f |= EQ_BIT(BPF_CORE_READ(child, files), BPF_CORE_READ(parent, files), FORK_CLONE_FILES);
	f |= EQ_BIT(BPF_CORE_READ(child, sighand), BPF_CORE_READ(parent, sighand), FORK_CLONE_SIGHAND);
	f |= NE_BIT(BPF_CORE_READ(child, pid), BPF_CORE_READ(child, tgid), FORK_CLONE_THREAD);
	/* namespaces: only when the child has an nsproxy of its own */
	if (cn != pn) {
		f |= NE_BIT(BPF_CORE_READ(cn, mnt_ns), BPF_CORE_READ(pn, mnt_ns), FORK_CLONE_NEWNS);
		f |= NE_BIT(BPF_CORE_READ(cn, uts_ns), BPF_CORE_READ(pn, uts_ns), FORK_CLONE_NEWUTS);
		f |= NE_BIT(BPF_CORE_READ(cn, ipc_ns), BPF_CORE_READ(pn, ipc_ns), FORK_CLONE_NEWIPC);
		f |= NE_BIT(BPF_CORE_READ(cn, net_ns), BPF_CORE_READ(pn, net_ns), FORK_CLONE_NEWNET);
		f |= NE_BIT(BPF_CORE_READ(cn, cgroup_ns), BPF_CORE_READ(pn, cgroup_ns), FORK_CLONE_NEWCGROUP);
	}
	f |= NE_BIT(BPF_CORE_READ(child, thread_pid, level), BPF_CORE_READ(parent, thread_pid, level),
		    FORK_CLONE_NEWPID);
	f |= NE_BIT(BPF_CORE_READ(child, cred, user_ns), BPF_CORE_READ(parent, cred, user_ns), FORK_CLONE_NEWUSER);
	return f;
}

static __always_inline int handle_fork(void *ctx, struct task_struct *parent, struct task_struct *child,
				       __u32 child_tid)
{
	struct fork_event *e;
	__u32 child_pid = child_tid;
	__u64 flags = 0;

	if (child) {
		child_pid = BPF_CORE_READ(child, tgid);
		flags = clone_flags(parent, child);
	}
	if (!(flags & FORK_CLONE_THREAD))
		exclusion_fork(bpf_get_current_pid_tgid() >> 32, child_pid);
	/* a new thread is not a new process */
	if ((flags & FORK_CLONE_THREAD) && !ES_CFG(cfg_report_threads)) {
		stat_inc(EVENT_FORK, STAT_FILTERED);
		return 0;
	}
	if (skip_event(EVENT_FORK))
		return 0;
	e = lifecycle_reserve(EVENT_FORK, sizeof(*e));
	if (!e)
		return 0;
	e->hdr.ts_ns = ES_NOW();
	e->hdr.type = EVENT_FORK;
	e->hdr.size = sizeof(*e);
	fill_task_ctx(&e->task, parent);
	e->child_pid = child_pid;
	e->child_tid = child_tid;
	e->clone_flags = flags;
	e->child_start_time_ns = child ? task_boot_start(child) : 0;
	lifecycle_submit(ctx, e, EVENT_FORK, sizeof(*e));
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork_btf, struct task_struct *parent, struct task_struct *child)
{
	return handle_fork(ctx, parent, child, BPF_CORE_READ(child, pid));
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(handle_fork_raw, struct task_struct *parent, struct task_struct *child)
{
	return handle_fork(ctx, parent, child, BPF_CORE_READ(child, pid));
}

/* the classic tracepoint carries no task pointers: no clone flags, and
 * threads cannot be told from processes */
SEC("tp/sched/sched_process_fork")
int handle_fork_tp(struct trace_event_raw_sched_process_fork *ctx)
{
	return handle_fork(ctx, (struct task_struct *)bpf_get_current_task(), 0, ctx->child_pid);
}

static __always_inline int handle_exit(void *ctx, struct task_struct *task)
{
	struct exit_event *e;
	__u8 is_thread;
	int code, skip;

	/* signal->live drops to zero when the last thread exits */
	is_thread = BPF_CORE_READ(task, signal, live.counter) != 0;
	if (is_thread && !ES_CFG(cfg_report_threads)) {
		exclusion_exit(is_thread);
		stat_inc(EVENT_EXIT, STAT_FILTERED);
		return 0;
	}
	/* whether the exit is excluded is decided before the entry goes */
	skip = skip_event(EVENT_EXIT);
	exclusion_exit(is_thread);
	if (skip)
		return 0;
	e = lifecycle_reserve(EVENT_EXIT, sizeof(*e));
	if (!e)
		return 0;
	e->hdr.ts_ns = ES_NOW();
	e->hdr.type = EVENT_EXIT;
	e->hdr.size = sizeof(*e);
	fill_task_ctx(&e->task, task);
	code = BPF_CORE_READ(task, exit_code);
	e->exit_code = (code >> 8) & 0xff;
	e->exit_signal = code & 0x7f;
	e->core_dumped = (code & 0x80) != 0;
	e->is_thread = is_thread;
#ifdef ES_PERFBUF
	/* ts_ns is CLOCK_MONOTONIC here: so is the task's start_time */
	e->duration_ns = e->hdr.ts_ns - BPF_CORE_READ(task, group_leader, start_time);
#else
	e->duration_ns = e->hdr.ts_ns - e->task.start_time_ns;
#endif
	__builtin_memset(e->_pad0, 0, sizeof(e->_pad0));
	lifecycle_submit(ctx, e, EVENT_EXIT, sizeof(*e));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit_btf, struct task_struct *p)
{
	return handle_exit(ctx, p);
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(handle_exit_raw, struct task_struct *p)
{
	return handle_exit(ctx, (struct task_struct *)bpf_get_current_task());
}

SEC("tp/sched/sched_process_exit")
int handle_exit_tp(void *ctx)
{
	return handle_exit(ctx, (struct task_struct *)bpf_get_current_task());
}
