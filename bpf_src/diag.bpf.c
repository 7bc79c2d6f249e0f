// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Diagnostic statistics, loaded only while a diagnostic runs (never by the
 * Sensor): at every syscall entry, count the syscall id; for the syscalls in
 * the monitored set (filled by user space), count the calling executable and
 * the file the call names. User space reads the maps after detaching.
 *
 * Files are counted at entry, from the name the caller passed (resolved
 * against its directory) or from the fd it passed: one hook for everything,
 * and failed attempts count too (a loop of failing opens is noise as well).
 */
#include "task.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AT_FDCWD -100
#define DIAG_PATH_MASK (DIAG_PATH_LEN - 1)
#define EEXIST 17
#define O_ACCMODE 03
#define O_CREAT 0100
#define O_TRUNC 01000
#define O_PATH 010000000

/*
 * The sensor's open policy (Config.read_opens): with it (0, "watched"), a
 * read-only open is counted apart and not attributed to its executable or
 * file, since the sensor reports only those of watched files; 1 ("all")
 * attributes every open.
 */
const volatile __u8 cfg_read_opens_all = 0;

const struct diag_syscall_spec *anchor_diag_syscall_spec __attribute__((unused));
const struct diag_counters *anchor_diag_counters __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DIAG_MAX_SYSCALLS);
	__type(key, __u32);
	__type(value, __u64);
} diag_syscalls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DIAG_MAX_SYSCALLS);
	__type(key, __u32);
	__type(value, struct diag_syscall_spec);
} diag_monitored SEC(".maps");

/*
 * Plain hashes, not LRU: an LRU would evict entries and lose their counts
 * without a trace; a full hash refuses new keys and every syscall that could
 * not be attributed is counted in diag_counters.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DIAG_MAX_INITIATORS);
	__type(key, struct diag_initiator_key);
	__type(value, struct diag_initiator);
} diag_initiators SEC(".maps");

/* which monitored syscalls each executable made: why it is noisy */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DIAG_MAX_INITIATORS);
	__type(key, struct diag_initiator_syscall_key);
	__type(value, __u64);
} diag_initiator_syscalls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DIAG_MAX_PATHS);
	__type(key, struct diag_path_key);
	__type(value, struct diag_path_count);
} diag_paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct diag_counters);
} diag_counters SEC(".maps");

/* the path key is built in the first half; a name read at its end may run
 * into the second half, which is cut off */
struct diag_scratch {
	struct diag_initiator initiator;
	char path[2 * DIAG_PATH_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct diag_scratch);
} diag_scratch SEC(".maps");

struct diag_args {
	unsigned long a[6];
};

static __always_inline unsigned long arg_at(const struct diag_args *args, int i)
{
	switch (i) {
	case 0: return args->a[0];
	case 1: return args->a[1];
	case 2: return args->a[2];
	case 3: return args->a[3];
	case 4: return args->a[4];
	case 5: return args->a[5];
	}
	return 0;
}

/*
 * A 32-bit syscall of a 64-bit kernel is numbered in the 32-bit table
 * (ia32 and AArch32 rename is 38; x86_64's 38 is setitimer, arm64's
 * renameat): counted apart, never under a 64-bit id.
 */
static __always_inline int compat_syscall(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

#if defined(__TARGET_ARCH_x86)
	/* TS_COMPAT (arch/x86/include/asm/thread_info.h): set for int 0x80,
	 * sysenter and 32-bit syscall entries */
	return (BPF_CORE_READ(task, thread_info.status) & 0x0002) != 0;
#elif defined(__TARGET_ARCH_arm64)
	/* TIF_32BIT (arch/arm64/include/asm/thread_info.h): an AArch32 task,
	 * all of whose syscalls are AArch32's */
	return (BPF_CORE_READ(task, thread_info.flags) >> 22) & 1;
#else
	return 0;
#endif
}

/* count the id; the spec when the syscall is monitored, else NULL */
static __always_inline struct diag_syscall_spec *count_syscall(long id, struct diag_counters **cp)
{
	__u32 zero = 0, key = (__u32)id;
	struct diag_counters *c = bpf_map_lookup_elem(&diag_counters, &zero);
	struct diag_syscall_spec *spec;
	__u64 *n;

	if (!c)
		return NULL;
	c->syscalls++;
	/* -1 (no syscall), x32 ids (bit 30 set) and anything past the table */
	if (id < 0 || id >= DIAG_MAX_SYSCALLS) {
		c->syscalls_out_of_range++;
		return NULL;
	}
	if (compat_syscall()) {
		c->syscalls_compat++;
		return NULL;
	}
	n = bpf_map_lookup_elem(&diag_syscalls, &key);
	if (n)
		*n += 1;
	spec = bpf_map_lookup_elem(&diag_monitored, &key);
	if (!spec || !spec->monitored)
		return NULL;
	c->monitored++;
	*cp = c;
	return spec;
}

static __always_inline void count_initiator_syscall(const struct diag_initiator_key *ik, __u32 nr,
						    struct diag_counters *c)
{
	struct diag_initiator_syscall_key key = {.ino = ik->ino, .dev = ik->dev, .nr = nr};
	__u64 one = 1, *v = bpf_map_lookup_elem(&diag_initiator_syscalls, &key);
	long err;

	if (v) {
		__sync_fetch_and_add(v, 1);
		return;
	}
	err = bpf_map_update_elem(&diag_initiator_syscalls, &key, &one, BPF_NOEXIST);
	if (err == -EEXIST) {
		v = bpf_map_lookup_elem(&diag_initiator_syscalls, &key);
		if (v)
			__sync_fetch_and_add(v, 1);
	} else if (err) {
		c->initiator_syscalls_full++;
	}
}

static __always_inline void count_initiator(struct task_struct *task, __u32 nr, struct diag_counters *c)
{
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	struct diag_initiator_key key = {};
	struct diag_initiator *v;
	struct diag_scratch *s;
	struct path_buf *pb;
	__u32 zero = 0, ret, len;
	long err;

	/* kernel threads */
	if (!exe) {
		c->initiators_no_exe++;
		return;
	}
	key.ino = BPF_CORE_READ(exe, f_inode, i_ino);
	key.dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
	count_initiator_syscall(&key, nr, c);
	v = bpf_map_lookup_elem(&diag_initiators, &key);
	if (v) {
		__sync_fetch_and_add(&v->count, 1);
		return;
	}
	/* first sighting: resolve the path once, later hits only count */
	s = bpf_map_lookup_elem(&diag_scratch, &zero);
	if (!s)
		return;
	ret = path_resolve((__u64)&exe->f_path);
	pb = bpf_map_lookup_elem(&path_buf, &zero);
	len = ret & PATH_MASK;
	s->initiator.count = 1;
	s->initiator.truncated = (ret & PATH_TRUNCATED) != 0;
	if (len > DIAG_PATH_LEN - 1) {
		len = DIAG_PATH_LEN - 1;
		s->initiator.truncated = 1;
	}
	if (!pb)
		len = 0;
	len &= DIAG_PATH_MASK;
	if (len)
		bpf_probe_read_kernel(s->initiator.path, len, pb->buf);
	s->initiator.path_len = len;
	err = bpf_map_update_elem(&diag_initiators, &key, &s->initiator, BPF_NOEXIST);
	if (err == -EEXIST) {
		/* another CPU inserted it meanwhile */
		v = bpf_map_lookup_elem(&diag_initiators, &key);
		if (v)
			__sync_fetch_and_add(&v->count, 1);
	} else if (err) {
		c->initiators_full++;
	}
}

/* the file an fd of the current task refers to, or NULL */
static __always_inline struct file *fd_file(struct task_struct *task, unsigned int fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *f = NULL;

	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

static __always_inline void count_path(struct task_struct *task, const struct diag_syscall_spec *spec,
				       const struct diag_args *args, struct diag_counters *c)
{
	int path_arg = spec->path_arg, dfd_arg = spec->dfd_arg, fd_arg = spec->fd_arg;
	const struct path *base = NULL;
	const char *name = NULL;
	struct diag_path_count *v, init = {};
	struct diag_scratch *s;
	struct path_buf *pb;
	struct file *file;
	__u32 zero = 0, pos = 0, ret, len;
	__u8 truncated = 0;
	char first = 0;
	long n, err;

	if (path_arg < 0 && fd_arg < 0)
		return;
	c->paths++;
	if (fd_arg >= 0) {
		file = fd_file(task, (unsigned int)arg_at(args, fd_arg));
		if (!file)
			goto unreadable;
		base = &file->f_path;
	} else {
		name = (const char *)arg_at(args, path_arg);
		if (bpf_probe_read_user(&first, 1, name))
			goto unreadable;
		if (first == '/') {
			base = NULL;
		} else if (dfd_arg < 0 || (int)arg_at(args, dfd_arg) == AT_FDCWD) {
			base = &BPF_CORE_READ(task, fs)->pwd;
		} else {
			file = fd_file(task, (unsigned int)arg_at(args, dfd_arg));
			if (!file)
				goto unreadable;
			base = &file->f_path;
		}
	}
	s = bpf_map_lookup_elem(&diag_scratch, &zero);
	if (!s)
		return;
	__builtin_memset(s->path, 0, DIAG_PATH_LEN);
	if (base) {
		ret = path_resolve((__u64)base);
		pb = bpf_map_lookup_elem(&path_buf, &zero);
		if (!pb)
			return;
		len = ret & PATH_MASK;
		truncated = (ret & PATH_TRUNCATED) != 0;
		if (len > DIAG_PATH_LEN - 1) {
			len = DIAG_PATH_LEN - 1;
			truncated = 1;
		}
		len &= DIAG_PATH_MASK;
		if (len)
			bpf_probe_read_kernel(s->path, len, pb->buf);
		pos = len;
	}
	if (name && !truncated) {
		/* a relative name follows its directory and a '/' (none after "/") */
		if (pos > 1) {
			if (pos >= DIAG_PATH_LEN - 1)
				truncated = 1;
			else
				s->path[pos++ & DIAG_PATH_MASK] = '/';
		}
		if (!truncated) {
			n = bpf_probe_read_user_str(&s->path[pos & DIAG_PATH_MASK], DIAG_PATH_LEN + 1, name);
			if (n < 0)
				goto unreadable;
			/* n counts the NUL */
			if (pos + n - 1 > DIAG_PATH_LEN - 1)
				truncated = 1;
		}
	}
	if (truncated) {
		s->path[DIAG_PATH_LEN - 1] = '\0';
		c->paths_truncated++;
	}
	v = bpf_map_lookup_elem(&diag_paths, s->path);
	if (v) {
		__sync_fetch_and_add(&v->count, 1);
		return;
	}
	init.count = 1;
	init.truncated = truncated;
	err = bpf_map_update_elem(&diag_paths, s->path, &init, BPF_NOEXIST);
	if (err == -EEXIST) {
		v = bpf_map_lookup_elem(&diag_paths, s->path);
		if (v)
			__sync_fetch_and_add(&v->count, 1);
	} else if (err) {
		c->paths_full++;
	}
	return;
unreadable:
	c->paths_unreadable++;
}

/* an open without write intent, as file.bpf.c's write_intent() decides */
static __always_inline int read_only_open(const struct diag_syscall_spec *spec, const struct diag_args *args)
{
	__u64 flags = 0;
	int arg = spec->flags_arg;

	if (cfg_read_opens_all || arg < 0)
		return 0;
	if (spec->flags_how)
		bpf_probe_read_user(&flags, sizeof(flags), (const void *)arg_at(args, arg));
	else
		flags = arg_at(args, arg);
	return (flags & O_PATH) || !(flags & (O_ACCMODE | O_CREAT | O_TRUNC));
}

static __always_inline int count_monitored(long id, const struct diag_syscall_spec *spec,
					   const struct diag_args *args, struct diag_counters *c)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	if (read_only_open(spec, args)) {
		c->read_only_opens++;
		return 0;
	}

	count_initiator(task, (__u32)id, c);
	count_path(task, spec, args, c);
	return 0;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(handle_diag_raw, struct pt_regs *regs, long id)
{
	struct diag_counters *c = NULL;
	struct diag_syscall_spec *spec = count_syscall(id, &c);
	struct diag_args args;

	if (!spec || !c)
		return 0;
	/* the syscall's own registers (r10, not rcx, for the 4th on x86) */
	args.a[0] = PT_REGS_PARM1_CORE_SYSCALL(regs);
	args.a[1] = PT_REGS_PARM2_CORE_SYSCALL(regs);
	args.a[2] = PT_REGS_PARM3_CORE_SYSCALL(regs);
	args.a[3] = PT_REGS_PARM4_CORE_SYSCALL(regs);
	args.a[4] = PT_REGS_PARM5_CORE_SYSCALL(regs);
	args.a[5] = PT_REGS_PARM6_CORE_SYSCALL(regs);
	return count_monitored(id, spec, &args, c);
}

SEC("tp/raw_syscalls/sys_enter")
int handle_diag_tp(struct trace_event_raw_sys_enter *ctx)
{
	struct diag_counters *c = NULL;
	struct diag_syscall_spec *spec = count_syscall(ctx->id, &c);
	struct diag_args args;

	if (!spec || !c)
		return 0;
	/* one load per field: the verifier refuses a copy through a moved ctx pointer */
	args.a[0] = ctx->args[0];
	args.a[1] = ctx->args[1];
	args.a[2] = ctx->args[2];
	args.a[3] = ctx->args[3];
	args.a[4] = ctx->args[4];
	args.a[5] = ctx->args[5];
	return count_monitored(ctx->id, spec, &args, c);
}
