// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Privilege and integrity: credential changes, signals to other processes,
 * setsid. Each syscall has its classic enter and exit tracepoints (see
 * sys.bpf.h for why); what the exit needs from the enter (arguments, the
 * credentials before the call) is stashed per task.
 */
#include "sys.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const struct cred_event *anchor_cred_event __attribute__((unused));
const struct kill_event *anchor_kill_event __attribute__((unused));
const struct setsid_event *anchor_setsid_event __attribute__((unused));
const struct ptrace_event *anchor_ptrace_event __attribute__((unused));
const struct memfd_event *anchor_memfd_event __attribute__((unused));
const struct bpf_event *anchor_bpf_event __attribute__((unused));
const struct module_event *anchor_module_event __attribute__((unused));
const struct mount_event *anchor_mount_event __attribute__((unused));
const struct umount_event *anchor_umount_event __attribute__((unused));

/* the ids and capabilities of a cred, in the order of struct cred_event */
#define CRED_IDS 8
#define CRED_CAPS 3
_Static_assert(__builtin_offsetof(struct cred_event, old_fsgid) - __builtin_offsetof(struct cred_event, old_uid) ==
		       (CRED_IDS - 1) * 4,
	       "cred_event ids are consecutive");
_Static_assert(__builtin_offsetof(struct cred_event, new_cap_effective) -
			       __builtin_offsetof(struct cred_event, new_cap_inheritable) ==
		       (CRED_CAPS - 1) * 8,
	       "cred_event capabilities are consecutive");

/* what sys_enter saw, kept until sys_exit */
struct priv_args {
	__u64 args[6];
	__u32 type; /* EVENT_* */
	__u32 _pad0;
	__u32 ids[CRED_IDS];
	__u64 caps[CRED_CAPS];
	char name[MODULE_NAME_LEN]; /* the module being loaded, from module_load */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STASH_ENTRIES);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct priv_args);
} priv_args SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct priv_args);
} priv_args_scratch SEC(".maps");

/* records with a variable tail are built here, then copied into the ring
 * with their real size */
#define PRIV_TAIL_MASK (4 * PATH_LEN - 1)
struct priv_buf {
	__u8 data[2 * (PRIV_TAIL_MASK + 1)];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct priv_buf);
} priv_buf SEC(".maps");

static __always_inline void *priv_buf_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&priv_buf, &zero);
}

/* the stashed arguments of the current task's syscall, if of this kind */
static __always_inline struct priv_args *stashed(__u64 id, __u32 type)
{
	struct priv_args *a = bpf_map_lookup_elem(&priv_args, &id);

	return a && a->type == type ? a : NULL;
}

static __always_inline void read_cred(__u32 *ids, __u64 *caps)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	const struct cred *cred = BPF_CORE_READ(task, cred);

	ids[0] = BPF_CORE_READ(cred, uid.val);
	ids[1] = BPF_CORE_READ(cred, euid.val);
	ids[2] = BPF_CORE_READ(cred, suid.val);
	ids[3] = BPF_CORE_READ(cred, fsuid.val);
	ids[4] = BPF_CORE_READ(cred, gid.val);
	ids[5] = BPF_CORE_READ(cred, egid.val);
	ids[6] = BPF_CORE_READ(cred, sgid.val);
	ids[7] = BPF_CORE_READ(cred, fsgid.val);
	/* kernel_cap_t is a u64 since 6.3, a u32[2] before: the same 8 bytes */
	bpf_core_read(&caps[0], 8, &cred->cap_inheritable);
	bpf_core_read(&caps[1], 8, &cred->cap_permitted);
	bpf_core_read(&caps[2], 8, &cred->cap_effective);
}

/* stash the arguments (and the credentials, for a credential change) */
static __always_inline int priv_enter(__u32 type, struct trace_event_raw_sys_enter *ctx, int nargs)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 zero = 0;
	struct priv_args *a;

	/* before anything is stashed: an excluded process costs a lookup */
	if (skip_event(type))
		return 0;
	a = bpf_map_lookup_elem(&priv_args_scratch, &zero);
	if (!a)
		return 0;
	/* only the syscall's own arguments: attaching fails with EACCES when a
	 * program reads past the end of the tracepoint's record; one load
	 * each, the verifier refuses a copy from ctx + offset */
	a->args[0] = nargs > 0 ? ctx->args[0] : 0;
	a->args[1] = nargs > 1 ? ctx->args[1] : 0;
	a->args[2] = nargs > 2 ? ctx->args[2] : 0;
	a->args[3] = nargs > 3 ? ctx->args[3] : 0;
	a->args[4] = nargs > 4 ? ctx->args[4] : 0;
	a->args[5] = nargs > 5 ? ctx->args[5] : 0;
	a->type = type;
	a->_pad0 = 0;
	a->name[0] = '\0';
	if (type == EVENT_CRED_CHANGE)
		read_cred(a->ids, a->caps);
	bpf_map_update_elem(&priv_args, &id, a, BPF_ANY);
	return 0;
}

#ifdef ES_PERFBUF
/* a fixed-size record is built here and copied into the perf buffer */
union priv_record {
	struct cred_event cred;
	struct kill_event kill;
	struct setsid_event setsid;
	struct ptrace_event ptrace;
	struct bpf_event bpf;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union priv_record);
} priv_record SEC(".maps");

#endif

#define reserve(type, size) es_reserve(&activity_events, priv_record, type, size)
#define submit(ctx, e, type, size) es_submit(ctx, &activity_events, e, type, size)

/* the header of a record of fixed size, reserved in the activity ring */
#define START_RECORD(e, kind, ctx)                                                     \
	do {                                                                           \
		fill_header(&(e)->hdr, kind);                                          \
		(e)->hdr.size = sizeof(*(e));                                          \
		fill_task_ctx(&(e)->task, (struct task_struct *)bpf_get_current_task()); \
		fill_sys_ctx(&(e)->sys, ctx);                                          \
	} while (0)

/* --- credential changes ------------------------------------------------- */

/* nargs: how many of the syscall's arguments are ids */
static __always_inline int cred_exit(struct trace_event_raw_sys_exit *ctx, int nargs)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct priv_args *a = bpf_map_lookup_elem(&priv_args, &id);
	struct cred_event *e;

	if (!a || a->type != EVENT_CRED_CHANGE)
		return 0;
	e = reserve(EVENT_CRED_CHANGE, sizeof(*e));
	if (e) {
		START_RECORD(e, EVENT_CRED_CHANGE, ctx);
		__builtin_memcpy(&e->old_uid, a->ids, sizeof(a->ids));
		__builtin_memcpy(&e->old_cap_inheritable, a->caps, sizeof(a->caps));
		read_cred(&e->new_uid, &e->new_cap_inheritable);
		/* capset's arguments are pointers: the new values say it all */
		e->arg0 = nargs > 0 ? a->args[0] : 0;
		e->arg1 = nargs > 1 ? a->args[1] : 0;
		e->arg2 = nargs > 2 ? a->args[2] : 0;
		e->_pad0 = 0;
		submit(ctx, e, EVENT_CRED_CHANGE, sizeof(*e));
	}
	bpf_map_delete_elem(&priv_args, &id);
	return 0;
}

#define CRED_SYSCALL(name, nargs)                                                   \
	SEC("tp/syscalls/sys_enter_" #name)                                   \
	int handle_##name##_enter_tp(struct trace_event_raw_sys_enter *ctx)   \
	{                                                                      \
		return priv_enter(EVENT_CRED_CHANGE, ctx, nargs > 0 ? nargs : 2); \
	}                                                                      \
	SEC("tp/syscalls/sys_exit_" #name)                                    \
	int handle_##name##_exit_tp(struct trace_event_raw_sys_exit *ctx)     \
	{                                                                      \
		return cred_exit(ctx, nargs);                                  \
	}

CRED_SYSCALL(setuid, 1)
CRED_SYSCALL(setgid, 1)
CRED_SYSCALL(setreuid, 2)
CRED_SYSCALL(setregid, 2)
CRED_SYSCALL(setresuid, 3)
CRED_SYSCALL(setresgid, 3)
CRED_SYSCALL(setfsuid, 1)
CRED_SYSCALL(setfsgid, 1)
CRED_SYSCALL(capset, 0)

/* --- signals -------------------------------------------------------------- */

/* a task's id in its own pid namespace, as kill() and tkill() see it */
static __always_inline __s32 task_vpid(struct task_struct *task)
{
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid upid = {};

	bpf_core_read(&upid, sizeof(upid), &pid->numbers[level & 31]);
	return upid.nr;
}

/* kill(pid, sig), tkill(tid, sig), tgkill(tgid, tid, sig): a signal to the
 * caller's own process (tkill: own thread), or signal 0 (a liveness
 * probe), is not reported */
static __always_inline int kill_enter(struct trace_event_raw_sys_enter *ctx, int nargs, __s32 pid,
				      __s32 tid, __u32 sig)
{
	struct task_struct *task;

	if (!kind_on(EVENT_KILL))
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	if (sig == 0 || (pid && pid == task_vpid(BPF_CORE_READ(task, group_leader))) ||
	    (!pid && tid == task_vpid(task))) {
		stat_inc(EVENT_KILL, STAT_FILTERED);
		return 0;
	}
	return priv_enter(EVENT_KILL, ctx, nargs);
}

static __always_inline int kill_exit(struct trace_event_raw_sys_exit *ctx, int which)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct priv_args *a = bpf_map_lookup_elem(&priv_args, &id);
	struct kill_event *e;

	if (!a || a->type != EVENT_KILL)
		return 0;
	e = reserve(EVENT_KILL, sizeof(*e));
	if (e) {
		START_RECORD(e, EVENT_KILL, ctx);
		e->_pad0 = 0;
		if (which == 0) { /* kill */
			e->target_pid = a->args[0];
			e->target_tid = 0;
			e->signal = a->args[1];
		} else if (which == 1) { /* tkill */
			e->target_pid = 0;
			e->target_tid = a->args[0];
			e->signal = a->args[1];
		} else { /* tgkill */
			e->target_pid = a->args[0];
			e->target_tid = a->args[1];
			e->signal = a->args[2];
		}
		submit(ctx, e, EVENT_KILL, sizeof(*e));
	}
	bpf_map_delete_elem(&priv_args, &id);
	return 0;
}

SEC("tp/syscalls/sys_enter_kill")
int handle_kill_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return kill_enter(ctx, 2, ctx->args[0], 0, ctx->args[1]);
}

SEC("tp/syscalls/sys_exit_kill")
int handle_kill_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	return kill_exit(ctx, 0);
}

SEC("tp/syscalls/sys_enter_tkill")
int handle_tkill_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return kill_enter(ctx, 2, 0, ctx->args[0], ctx->args[1]);
}

SEC("tp/syscalls/sys_exit_tkill")
int handle_tkill_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	return kill_exit(ctx, 1);
}

SEC("tp/syscalls/sys_enter_tgkill")
int handle_tgkill_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return kill_enter(ctx, 3, ctx->args[0], ctx->args[1], ctx->args[2]);
}

SEC("tp/syscalls/sys_exit_tgkill")
int handle_tgkill_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	return kill_exit(ctx, 2);
}

/* --- setsid --------------------------------------------------------------- */

SEC("tp/syscalls/sys_enter_setsid")
int handle_setsid_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return priv_enter(EVENT_SETSID, ctx, 0);
}

SEC("tp/syscalls/sys_exit_setsid")
int handle_setsid_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct priv_args *a = bpf_map_lookup_elem(&priv_args, &id);
	struct setsid_event *e;

	if (!a || a->type != EVENT_SETSID)
		return 0;
	e = reserve(EVENT_SETSID, sizeof(*e));
	if (e) {
		START_RECORD(e, EVENT_SETSID, ctx);
		submit(ctx, e, EVENT_SETSID, sizeof(*e));
	}
	bpf_map_delete_elem(&priv_args, &id);
	return 0;
}

/* --- ptrace --------------------------------------------------------------- */

#define PTRACE_TRACEME 0
#define PTRACE_POKETEXT 4
#define PTRACE_POKEDATA 5
#define PTRACE_POKEUSR 6
#define PTRACE_SETREGS 13   /* x86 */
#define PTRACE_SETFPREGS 15 /* x86 */
#define PTRACE_ATTACH 16
#define PTRACE_SETREGSET 0x4205
#define PTRACE_SEIZE 0x4206

/* requests that attach or change the tracee; reads (PEEK*, GETREGS, ...)
 * and stepping are what a debugger does all the time: counted, not sent */
static __always_inline int ptrace_wanted(long request)
{
	switch (request) {
	case PTRACE_TRACEME:
	case PTRACE_POKETEXT:
	case PTRACE_POKEDATA:
	case PTRACE_POKEUSR:
	case PTRACE_SETREGS:
	case PTRACE_SETFPREGS:
	case PTRACE_ATTACH:
	case PTRACE_SETREGSET:
	case PTRACE_SEIZE:
		return 1;
	}
	return 0;
}

SEC("tp/syscalls/sys_enter_ptrace")
int handle_ptrace_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	if (!kind_on(EVENT_PTRACE))
		return 0;
	if (!ptrace_wanted(ctx->args[0])) {
		stat_inc(EVENT_PTRACE, STAT_FILTERED);
		return 0;
	}
	return priv_enter(EVENT_PTRACE, ctx, 4);
}

SEC("tp/syscalls/sys_exit_ptrace")
int handle_ptrace_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct priv_args *a = stashed(id, EVENT_PTRACE);
	struct ptrace_event *e;

	if (!a)
		return 0;
	e = reserve(EVENT_PTRACE, sizeof(*e));
	if (e) {
		START_RECORD(e, EVENT_PTRACE, ctx);
		e->request = a->args[0];
		e->target_pid = a->args[1];
		e->addr = a->args[2];
		e->data = a->args[3];
		e->_pad0 = 0;
		submit(ctx, e, EVENT_PTRACE, sizeof(*e));
	}
	bpf_map_delete_elem(&priv_args, &id);
	return 0;
}

/* --- memfd_create --------------------------------------------------------- */

SEC("tp/syscalls/sys_enter_memfd_create")
int handle_memfd_create_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return priv_enter(EVENT_MEMFD_CREATE, ctx, 2);
}

SEC("tp/syscalls/sys_exit_memfd_create")
int handle_memfd_create_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct priv_args *a = stashed(id, EVENT_MEMFD_CREATE);
	struct memfd_event *e;
	long len;

	if (!a)
		return 0;
	e = priv_buf_get();
	if (!e)
		goto out;
	START_RECORD(e, EVENT_MEMFD_CREATE, ctx);
	e->flags = a->args[1];
	/* the caller's name, still in its memory at exit */
	len = bpf_probe_read_user_str((char *)(e + 1), MEMFD_NAME_LEN, (const char *)a->args[0]);
	len = len > 0 ? len - 1 : 0;
	if (len == MEMFD_NAME_LEN - 1)
		stat_inc(EVENT_MEMFD_CREATE, STAT_TRUNCATED);
	len &= MEMFD_NAME_LEN - 1;
	e->name_len = len;
	e->hdr.size = sizeof(*e) + len;
	emit(ctx, e, EVENT_MEMFD_CREATE, ES_CLAMP(sizeof(*e) + len, sizeof(struct priv_buf)));
out:
	bpf_map_delete_elem(&priv_args, &id);
	return 0;
}

/* --- bpf ------------------------------------------------------------------ */

#define BPF_CMD_PROG_LOAD 5
/* union bpf_attr for BPF_PROG_LOAD: offsets are user ABI, they never change */
#define BPF_ATTR_PROG_TYPE 0
#define BPF_ATTR_INSN_CNT 4
#define BPF_ATTR_PROG_NAME 48

/* map element access is the data path of every BPF user (this library's
 * statistics too): counted, not sent */
static __always_inline int bpf_cmd_wanted(__u64 cmd)
{
	switch (cmd) {
	case 1:	 /* BPF_MAP_LOOKUP_ELEM */
	case 2:	 /* BPF_MAP_UPDATE_ELEM */
	case 3:	 /* BPF_MAP_DELETE_ELEM */
	case 4:	 /* BPF_MAP_GET_NEXT_KEY */
	case 21: /* BPF_MAP_LOOKUP_AND_DELETE_ELEM */
	case 24: /* BPF_MAP_LOOKUP_BATCH */
	case 25: /* BPF_MAP_LOOKUP_AND_DELETE_BATCH */
	case 26: /* BPF_MAP_UPDATE_BATCH */
	case 27: /* BPF_MAP_DELETE_BATCH */
		return 0;
	}
	return 1;
}

SEC("tp/syscalls/sys_enter_bpf")
int handle_bpf_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	if (!kind_on(EVENT_BPF_CALL))
		return 0;
	if (!bpf_cmd_wanted(ctx->args[0])) {
		stat_inc(EVENT_BPF_CALL, STAT_FILTERED);
		return 0;
	}
	return priv_enter(EVENT_BPF_CALL, ctx, 3);
}

SEC("tp/syscalls/sys_exit_bpf")
int handle_bpf_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct priv_args *a = stashed(id, EVENT_BPF_CALL);
	const char *attr;
	struct bpf_event *e;

	if (!a)
		return 0;
	e = reserve(EVENT_BPF_CALL, sizeof(*e));
	if (e) {
		START_RECORD(e, EVENT_BPF_CALL, ctx);
		e->cmd = a->args[0];
		e->attr_size = a->args[2];
		e->prog_type = 0;
		e->insn_cnt = 0;
		__builtin_memset(e->prog_name, 0, sizeof(e->prog_name));
		attr = (const char *)a->args[1];
		if (e->cmd == BPF_CMD_PROG_LOAD && attr) {
			if (e->attr_size >= BPF_ATTR_INSN_CNT + 4) {
				bpf_probe_read_user(&e->prog_type, 4, attr + BPF_ATTR_PROG_TYPE);
				bpf_probe_read_user(&e->insn_cnt, 4, attr + BPF_ATTR_INSN_CNT);
			}
			/* not NUL-terminated when it fills the array */
			if (e->attr_size >= BPF_ATTR_PROG_NAME + PROG_NAME_LEN)
				bpf_probe_read_user(e->prog_name, sizeof(e->prog_name),
						    attr + BPF_ATTR_PROG_NAME);
		}
		submit(ctx, e, EVENT_BPF_CALL, sizeof(*e));
	}
	bpf_map_delete_elem(&priv_args, &id);
	return 0;
}

/* --- module loading ------------------------------------------------------- */

static __always_inline int module_exit(struct trace_event_raw_sys_exit *ctx, int finit)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct priv_args *a = stashed(id, EVENT_MODULE_LOAD);
	struct module_event *e;
	struct file *file;
	const char *uargs;
	char *tail;
	__u32 pos = 0;
	long len;

	if (!a)
		return 0;
	e = priv_buf_get();
	if (!e)
		goto out;
	START_RECORD(e, EVENT_MODULE_LOAD, ctx);
	__builtin_memcpy(e->name, a->name, sizeof(e->name));
	__builtin_memset(e->_pad0, 0, sizeof(e->_pad0));
	e->path_truncated = 0;
	tail = (char *)(e + 1);
	if (finit) {
		e->image_len = 0;
		e->fd = a->args[0];
		e->flags = a->args[2];
		uargs = (const char *)a->args[1];
		file = fd_file(a->args[0]);
		if (file)
			pos = append_path(tail, &file->f_path, &e->path_truncated);
	} else {
		e->image_len = a->args[1];
		e->fd = -1;
		e->flags = 0;
		uargs = (const char *)a->args[2];
	}
	pos &= PATH_MASK;
	e->path_len = pos;
	len = bpf_probe_read_user_str(&tail[pos], MODULE_ARGS_LEN, uargs);
	len = len > 0 ? len - 1 : 0;
	if (len == MODULE_ARGS_LEN - 1 || e->path_truncated)
		stat_inc(EVENT_MODULE_LOAD, STAT_TRUNCATED);
	len &= MODULE_ARGS_LEN - 1;
	e->args_len = len;
	/* the size from registers, not re-read from the buffer: the verifier
	 * knows the bounds of the former only */
	e->hdr.size = sizeof(*e) + pos + len;
	emit(ctx, e, EVENT_MODULE_LOAD, ES_CLAMP(sizeof(*e) + pos + len, sizeof(struct priv_buf)));
out:
	bpf_map_delete_elem(&priv_args, &id);
	return 0;
}

SEC("tp/syscalls/sys_enter_init_module")
int handle_init_module_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return priv_enter(EVENT_MODULE_LOAD, ctx, 3);
}

SEC("tp/syscalls/sys_exit_init_module")
int handle_init_module_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	return module_exit(ctx, 0);
}

SEC("tp/syscalls/sys_enter_finit_module")
int handle_finit_module_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return priv_enter(EVENT_MODULE_LOAD, ctx, 3);
}

SEC("tp/syscalls/sys_exit_finit_module")
int handle_finit_module_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	return module_exit(ctx, 1);
}

/* the module's name, once the kernel has parsed the image: fires inside
 * init_module/finit_module, in the loading task */
static __always_inline int module_loaded(const char *name)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct priv_args *a = stashed(id, EVENT_MODULE_LOAD);

	if (a)
		bpf_probe_read_kernel_str(a->name, sizeof(a->name), name);
	return 0;
}

SEC("tp_btf/module_load")
int BPF_PROG(handle_module_load_btf, struct module *mod)
{
	return module_loaded(mod->name);
}

SEC("raw_tp/module_load")
int BPF_PROG(handle_module_load_raw, struct module *mod)
{
	/* the array in place (BPF_CORE_READ would copy it and hand on the copy) */
	return module_loaded((const char *)__builtin_preserve_access_index(&mod->name));
}

SEC("tp/module/module_load")
int handle_module_load_tp(struct trace_event_raw_module_load *ctx)
{
	return module_loaded((const char *)ctx + (ctx->__data_loc_name & 0xffff));
}

/* --- mount, umount -------------------------------------------------------- */

/* a string from the caller's memory at tail[pos], at most max bytes; its length */
static __always_inline __u32 user_str(char *tail, __u32 pos, __u32 max, const char *src)
{
	long len;

	if (!src)
		return 0;
	len = bpf_probe_read_user_str(&tail[pos & PRIV_TAIL_MASK], max, src);
	return len > 0 ? len - 1 : 0;
}

/*
 * The caller's path string made absolute, at tail[pos]: its root (for a
 * string starting with "/", so a chroot shows) or working directory, then
 * the string. Returns the length; *truncated when it did not fit.
 */
static __always_inline __u32 abs_user_path(char *tail, __u32 pos, const char *src, __u8 *truncated)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	__u32 len, max;
	long n;
	char c = 0;

	*truncated = 0;
	if (!src || bpf_probe_read_user(&c, 1, src) || !c)
		return 0;
	len = append_path(&tail[pos & PRIV_TAIL_MASK], c == '/' ? &fs->root : &fs->pwd, truncated) & PATH_MASK;
	if (len + 2 > PATH_LEN) {
		*truncated = 1;
		return len;
	}
	if (len == 1 && c == '/')
		len = 0; /* the base is "/": the string brings its own slash */
	else if (len && c != '/')
		tail[(pos + len++) & PRIV_TAIL_MASK] = '/';
	max = PATH_LEN - len;
	/* an identity on [1, PATH_LEN] that the verifier can see */
	asm volatile("" : "+r"(max));
	max = ((max - 1) & PATH_MASK) + 1;
	n = bpf_probe_read_user_str(&tail[(pos + len) & PRIV_TAIL_MASK], max, src);
	if (n <= 0) {
		*truncated = 1;
		return len;
	}
	if (n == max) {
		/* the buffer is full: an exact fit only if the string ends here */
		c = 0;
		bpf_probe_read_user(&c, 1, src + n - 1);
		*truncated |= c != 0;
	}
	return (len + n - 1) & PATH_MASK;
}

SEC("tp/syscalls/sys_enter_mount")
int handle_mount_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return priv_enter(EVENT_MOUNT, ctx, 4);
}

SEC("tp/syscalls/sys_exit_mount")
int handle_mount_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct priv_args *a = stashed(id, EVENT_MOUNT);
	struct mount_event *e;
	char *tail;
	__u32 pos = 0;

	if (!a)
		return 0;
	e = priv_buf_get();
	if (!e)
		goto out;
	START_RECORD(e, EVENT_MOUNT, ctx);
	e->flags = a->args[3];
	__builtin_memset(e->_pad0, 0, sizeof(e->_pad0));
	e->_pad1 = 0;
	tail = (char *)(e + 1);
	/* the strings are still in the caller's memory at exit */
	e->source_len = user_str(tail, pos, PATH_LEN, (const char *)a->args[0]) & PATH_MASK;
	pos += e->source_len;
	e->target_len = user_str(tail, pos, PATH_LEN, (const char *)a->args[1]) & PATH_MASK;
	pos += e->target_len;
	e->fstype_len = user_str(tail, pos, FSTYPE_LEN, (const char *)a->args[2]) & (FSTYPE_LEN - 1);
	pos += e->fstype_len;
	e->path_len = abs_user_path(tail, pos, (const char *)a->args[1], &e->path_truncated);
	pos += e->path_len;
	pos &= PRIV_TAIL_MASK;
	e->hdr.size = sizeof(*e) + pos;
	emit(ctx, e, EVENT_MOUNT, ES_CLAMP(sizeof(*e) + pos, sizeof(struct priv_buf)));
out:
	bpf_map_delete_elem(&priv_args, &id);
	return 0;
}

/* umount2(2): the kernel's name for it is umount */
SEC("tp/syscalls/sys_enter_umount")
int handle_umount_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return priv_enter(EVENT_UMOUNT, ctx, 2);
}

SEC("tp/syscalls/sys_exit_umount")
int handle_umount_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct priv_args *a = stashed(id, EVENT_UMOUNT);
	struct umount_event *e;
	__u32 len;

	if (!a)
		return 0;
	e = priv_buf_get();
	if (!e)
		goto out;
	START_RECORD(e, EVENT_UMOUNT, ctx);
	e->flags = a->args[1];
	__builtin_memset(e->_pad0, 0, sizeof(e->_pad0));
	len = user_str((char *)(e + 1), 0, PATH_LEN, (const char *)a->args[0]) & PATH_MASK;
	e->target_len = len;
	e->path_len = abs_user_path((char *)(e + 1), len, (const char *)a->args[0], &e->path_truncated);
	len = (len + e->path_len) & PRIV_TAIL_MASK;
	e->hdr.size = sizeof(*e) + len;
	emit(ctx, e, EVENT_UMOUNT, ES_CLAMP(sizeof(*e) + len, sizeof(struct priv_buf)));
out:
	bpf_map_delete_elem(&priv_args, &id);
	return 0;
}
