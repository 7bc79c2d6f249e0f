// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * File events: open (and create), mknod, unlink, mkdir, rename, chmod,
 * chown, link, symlink.
 *
 * Hooks: the classic per-syscall tracepoints, an enter/exit pair per
 * syscall (syscalls:sys_enter_openat, ...; tracefs is mounted by the
 * library), not a raw sys_enter/sys_exit pair: why is in sys.bpf.h. Each
 * file syscall has its own pair, only the syscalls of enabled kinds are
 * attached, and there is a single variant (tp): syscalls:* events exist
 * only as trace events; the open's hooks have a second, fentry, where the
 * kernel allows it (one fexit program on do_filp_open: "The open seen
 * inside the kernel", at the end). (rename_target, which sees whether a rename
 * replaced a file, and path_*, which see the paths the kernel resolved,
 * hook inside the kernel and have lsm/fentry/kprobe variants.) 32-bit
 * compat syscalls do not fire them on x86 and arm64
 * (ARCH_TRACE_IGNORE_COMPAT_SYSCALLS) and are not reported.
 *
 * sys_enter stashes the arguments per thread (call_slots, call_store,
 * file_calls);
 * sys_exit, when the result is known, reads the caller's strings
 * (resident: the kernel has just read them), resolves paths and emits. The record builders are
 * global functions: verified once per program, not inlined into each.
 *
 * The kernel copies a path string early in the syscall (getname); what
 * sys_exit reads is the caller's memory as it is then, which another
 * thread may have rewritten (while the call blocked, say) to falsify the
 * event or move it under an excluded path. So sys_enter also keeps each
 * string (struct arg_copy: a short one whole, a longer one's length and
 * keyed hash), and sys_exit compares: a string that changed is reported
 * from the sys_enter copy when that holds it whole, and the record says so
 * (PATH_SOURCE_ARG_CHANGED). A rewrite between sys_enter and the kernel's
 * own copy remains unseen: only the path_* hooks, where the kernel allows
 * them, see what the kernel used (PATH_SOURCE_KERNEL).
 */
#include "task.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const struct file_open_event *anchor_file_open_event __attribute__((unused));
const struct file_unlink_event *anchor_file_unlink_event __attribute__((unused));
const struct dir_create_event *anchor_dir_create_event __attribute__((unused));
const struct file_rename_event *anchor_file_rename_event __attribute__((unused));
const struct file_chmod_event *anchor_file_chmod_event __attribute__((unused));
const struct file_chown_event *anchor_file_chown_event __attribute__((unused));
const struct file_link_event *anchor_file_link_event __attribute__((unused));
const struct file_symlink_event *anchor_file_symlink_event __attribute__((unused));

/* per-process open dedup window in ns; 0 reports every open */
const volatile __u64 cfg_file_dedup_ns = 0;

/*
 * Config.read_opens: 1 ("all") reports every open; 0 ("watched") reports an
 * open with write intent, and a read-only one only when the file it opened
 * is watched (watched_files, by identity) or the kernel refused it; other
 * read-only opens are counted (unwatched), decided before any path work.
 */
const volatile __u8 cfg_read_opens_all = 0;

/*
 * A read-only open or openat leaves its arguments in the registers for its
 * sys_exit to read (read_open_exit_regs()): where the kernel gives a
 * task's saved registers (bpf_task_pt_regs(), 5.15) through a trusted task
 * pointer. Elsewhere, and for openat2 (whose flags are in user memory),
 * sys_enter stashes them.
 */
#define OPEN_ARGS_AT_EXIT (ES_TASK_BTF && bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs))
/* the calls whose read-only opens sys_enter leaves to sys_exit: the two
 * programs' one rule */
#define OPEN_REGS_CALL(nr) (OPEN_ARGS_AT_EXIT && ((nr) == NR_openat || (nr) == NR_open))

#define O_ACCMODE 03
#define O_WRONLY 01
#define O_RDWR 02
#define O_CREAT 0100
#define O_TRUNC 01000
#define O_APPEND 02000
#define O_PATH 010000000
#define EPERM 1
#define EACCES 13
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_REMOVEDIR 0x200
/* include/linux/fs.h: 1 << 20 since 4.19 introduced it; the kernel tests
 * (test_create_new_file_only) catch a kernel where it moved */
#define FMODE_CREATED 0x100000

/* syscall numbers, as the records report them */
#if defined(__TARGET_ARCH_x86)
#define NR_open 2
#define NR_rename 82
#define NR_mkdir 83
#define NR_rmdir 84
#define NR_creat 85
#define NR_link 86
#define NR_unlink 87
#define NR_symlink 88
#define NR_chmod 90
#define NR_fchmod 91
#define NR_chown 92
#define NR_fchown 93
#define NR_lchown 94
#define NR_openat 257
#define NR_mkdirat 258
#define NR_fchownat 260
#define NR_unlinkat 263
#define NR_renameat 264
#define NR_linkat 265
#define NR_symlinkat 266
#define NR_fchmodat 268
#define NR_renameat2 316
#define NR_openat2 437
#define NR_fchmodat2 452
#define NR_mknod 133
#define NR_mknodat 259
#elif defined(__TARGET_ARCH_arm64)
/* no such calls on arm64: placeholders that keep normalise() valid */
#define NR_open -2
#define NR_rename -3
#define NR_mkdir -4
#define NR_rmdir -5
#define NR_creat -6
#define NR_link -7
#define NR_unlink -8
#define NR_symlink -9
#define NR_chmod -10
#define NR_chown -11
#define NR_lchown -12
#define NR_mknod -13
#define NR_fchmod 52
#define NR_fchown 55
#define NR_openat 56
#define NR_mkdirat 34
#define NR_fchownat 54
#define NR_unlinkat 35
#define NR_renameat 38
#define NR_linkat 37
#define NR_symlinkat 36
#define NR_fchmodat 53
#define NR_renameat2 276
#define NR_openat2 437
#define NR_fchmodat2 452
#define NR_mknodat 33
#else
#error "file.bpf.c: unsupported architecture"
#endif

enum file_op {
	FOP_NONE,
	FOP_OPEN,
	FOP_MKNOD,
	FOP_UNLINK,
	FOP_MKDIR,
	FOP_RENAME,
	FOP_CHMOD,
	FOP_CHOWN,
	FOP_LINK,
	FOP_SYMLINK,
};

/* the length of a string sys_enter could not read */
#define ARG_UNREAD 0xffffffff

/* strings of at most ARG_WHOLE bytes are kept whole at sys_enter; a read of
 * ARG_COPY_LEN bytes cannot tell a longer string from one byte longer */
#define ARG_WHOLE (ARG_COPY_LEN - 2)

/* a caller's string as sys_enter read it */
struct arg_copy {
	__u64 hash; /* longer than ARG_WHOLE: keyed by seed, the whole string */
	__u32 len;  /* ARG_UNREAD when it could not be read */
	__u32 seed; /* random, per call: the caller cannot aim at a collision */
	char head[ARG_COPY_LEN]; /* the whole string, NUL-terminated, when len <= ARG_WHOLE */
};

/* a file syscall's arguments, normalised at sys_enter */
struct file_call {
	__u64 path;	/* user pointer: the file, the old name, a symlink's target */
	__u64 new_path; /* user pointer: the new name (rename, link, symlink) */
	__u32 flags;
	__u32 mode;
	__u32 uid;
	__u32 gid;
	__s32 dirfd;
	__s32 new_dirfd;
	__u32 nr;
	__u32 op;
	__u32 rename_seen; /* RENAME_SEEN | RENAME_TARGET_EXISTED, set by rename_target */
	__u32 kpaths;	   /* bit which: a path_* hook resolved path (0) or new_path (1) */
	__u32 tid;	   /* in call_slots: the thread whose call this is; 0: none */
	/* a read-only open under the "watched" policy (read_open_enter()):
	 * only path, flags, mode, dirfd, nr, op and tid are set */
	__u32 read_only;
	struct arg_copy arg[2]; /* of path and new_path */
};

/* call_copy() copies words */
_Static_assert(sizeof(struct file_call) % 8 == 0 && __builtin_offsetof(struct file_call, arg[1]) % 8 == 0,
	       "file_call words");

/*
 * A call's arguments from its sys_enter to its sys_exit: in the slot of
 * its thread id in a plain array when the id is below CALL_SLOTS (no hash
 * update, lookup or delete), else in call_store or file_calls. The slot's index is the
 * thread id itself, not a part of it: no two live threads share a slot,
 * and a slot is written only by its own thread's programs, so no other
 * thread, however many it starts or blocks, can take it, overwrite it or
 * mix its arguments into it. CALL_SLOTS is the kernel's default pid_max:
 * on a system that raised pid_max (systemd does), threads with higher ids
 * use the places below.
 * A slot left by a call whose exit program did not run (the sensor started
 * between the two) is its thread's own, and is taken by its next call.
 */
#define CALL_SLOTS 32768

/*
 * For the other threads, where the kernel has task storage (5.11) and a
 * trusted current task: the stash is the thread's own storage, created at
 * its first file call and freed with the thread. Nothing is shared, so
 * nothing can be filled or evicted by other threads, and a call costs one
 * storage lookup at each end instead of a hash update, lookup and delete.
 * A storage the kernel cannot allocate (memory pressure) leaves the call
 * unstashed: counted (unmatched) at its exit.
 */
#define CALL_STORE (ES_TASK_BTF && cfg_task_storage)

/* set by the loader (objects.py): 1 where the kernel creates a task
 * storage map; elsewhere it leaves call_store out, and the verifier rules
 * out every use of it, all behind CALL_STORE */
const volatile __u8 cfg_task_storage = 0;

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct file_call);
} call_store SEC(".maps");

/*
 * Elsewhere, an LRU hash keyed by thread: one entry per thread, and no
 * user can fill it for everyone else. Threads blocked
 * inside file syscalls (on a FIFO, a FUSE mount of their own) hold their
 * entries; the oldest are evicted to make room for new calls, so other
 * processes' calls are still stashed, and a call whose entry was evicted
 * is counted (unmatched) at its exit.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STASH_ENTRIES);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct file_call);
} file_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CALL_SLOTS);
	__type(key, __u32);
	__type(value, struct file_call);
} call_slots SEC(".maps");

/*
 * Paths the kernel resolved, recorded by the path_* hooks (BPF LSM, fentry
 * or kprobe on the kernel's security_path_* checks, where the kernel allows
 * one) between a call's sys_enter and its sys_exit: the directory and the
 * entry the syscall acts on, after the kernel's own lookup of the string.
 * Not per CPU: the call may sleep and move between them. An LRU hash,
 * sized for the calls in flight between the check and the exit, which is
 * short; a call whose entry was evicted falls back to the caller's string.
 */
#define KPATH_ENTRIES 512

struct kpath_key {
	__u64 id; /* pid_tgid */
	__u32 which; /* 0: path, 1: new_path */
	__u32 _pad0;
};

struct kpath {
	__u32 n; /* length | PATH_TRUNCATED */
	__u32 _pad0;
	char buf[PATH_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KPATH_ENTRIES);
	__type(key, struct kpath_key);
	__type(value, struct kpath);
} file_kpaths SEC(".maps");

/*
 * The watched files, by the kernel's identity of the inode (its
 * superblock's s_dev, i_ino): a read-only open of one is reported whatever
 * name, hard link or bind mount it goes through. Filled by user space.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WATCHED_MAX);
	__type(key, struct watched_key);
	__type(value, __u32);
} watched_files SEC(".maps");

/* the pre-filter of watched_files (events.h) */
struct watched_bits {
	__u64 word[WATCHED_BITS_WORDS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct watched_bits);
} watched_bits SEC(".maps");

/* last reported open of (process, file, access class) */
struct dedup_key {
	__u64 ino;
	__u32 dev;
	__u32 tgid;
	__u32 flags;
	__u32 _pad0;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct dedup_key);
	__type(value, __u64); /* ts_ns of the last open reported */
} file_dedup SEC(".maps");

/*
 * A record is built here, fixed part first and strings after it, then
 * copied into the ring with its real size. Every offset into buf is masked
 * with FILE_OFF_MASK and a string is at most PATH_LEN, so the verifier sees
 * every write inside buf. The largest record (four strings of at most
 * PATH_LEN - 1) starts its last string below the mask. A per-CPU value is
 * limited to 32 KiB.
 */
#define FILE_OFF_MASK (4 * PATH_LEN - 1)

struct file_scratch {
	__u8 buf[4 * PATH_LEN + PATH_LEN];
	/* a caller's string as read to be checked, at sys_enter and at
	 * sys_exit; there the record's strings are copied from it */
	__u8 check[PATH_LEN];
	__u32 check_len; /* its length */
	__u32 check_cut; /* it filled check: it may go on */
	/* the record's last base directory put_abs_path() resolved (a struct
	 * path's address; 0: none yet), and where in buf, with what result:
	 * a rename's or link's two names usually share one */
	__u64 base;
	__u32 base_off;
	__u32 base_n;
	/* built here at sys_enter, then stashed; at sys_exit, the stashed
	 * call copied back here, where the record builders read it */
	struct file_call call;
	__u64 number; /* map_number()'s */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct file_scratch);
} file_scratch SEC(".maps");

/* the part every file record starts with */
struct file_head {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
};

/* two-path records share one layout and one emitter */
_Static_assert(sizeof(struct file_link_event) == sizeof(struct file_rename_event), "link/rename layout");
_Static_assert(__builtin_offsetof(struct file_link_event, new_arg_path_len) ==
		       __builtin_offsetof(struct file_rename_event, new_arg_path_len),
	       "link/rename layout");

static __always_inline struct file_scratch *scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&file_scratch, &zero);
}

static __always_inline struct file *fd_file(struct task_struct *task, int fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	/* struct fdtable's first two members, as every kernel lays them out:
	 * one read instead of two on every open's exit */
	struct {
		unsigned int max_fds;
		struct file **fd;
	} h = {};
	struct file *f = NULL;

	if (fd < 0 || !fdt)
		return NULL;
	if (bpf_core_field_offset(struct fdtable, max_fds) == 0 &&
	    bpf_core_field_offset(struct fdtable, fd) == offsetof(typeof(h), fd)) {
		bpf_probe_read_kernel(&h, sizeof(h), fdt);
	} else {
		h.max_fds = BPF_CORE_READ(fdt, max_fds);
		h.fd = BPF_CORE_READ(fdt, fd);
	}
	if ((unsigned int)fd >= h.max_fds)
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &h.fd[fd]);
	return f;
}

/*
 * The current task's file at fd, the cheap way where the kernel has
 * bpf_get_current_task_btf() (5.11): its pointers are then loaded directly
 * (fault-safe loads, not a helper call each); a kernel without it keeps
 * only the other branch (ES_TASK_BTF, compat.bpf.h).
 */
static __always_inline struct file *current_fd_file(int fd)
{
	struct fdtable *fdt;
	struct file *f = NULL;

	if (!ES_TASK_BTF)
		return fd_file((struct task_struct *)bpf_get_current_task(), fd);
	/* cast: see fill_current_task_ctx() */
	if (PATH_DIRECT)
		fdt = bpf_core_cast(bpf_get_current_task_btf(), struct task_struct)->files->fdt;
	else
		fdt = bpf_get_current_task_btf()->files->fdt;
	if (fd < 0 || (unsigned int)fd >= fdt->max_fds)
		return NULL;
	/* the slot loaded directly too: its address as a number, typed as the
	 * first entry of a files_struct's own array of file pointers (the
	 * kernel has no type of a lone slot) */
	if (PATH_DIRECT)
		return KREAD(struct files_struct,
			     (__u64)fdt->fd + (__u64)fd * sizeof(f) - bpf_core_field_offset(struct files_struct, fd_array),
			     fd_array[0]);
	bpf_probe_read_kernel(&f, sizeof(f), &fdt->fd[fd]);
	return f;
}

/*
 * A file's inode and f_mode: loaded directly where the path walk's loads
 * are (PATH_DIRECT, task.bpf.h), else one bpf_probe_read_kernel() each.
 */
static __always_inline struct inode *file_inode_of(struct file *file)
{
	return (struct inode *)KREAD(struct file, file, f_inode);
}

static __always_inline __u32 file_fmode(struct file *file)
{
	return KREAD(struct file, file, f_mode);
}

/*
 * An inode's identity: its number into *ino, its superblock's s_dev
 * returned. Loaded directly where PATH_DIRECT; else, where the kernel lays
 * i_sb out 24 bytes before i_ino (the usual configurations: i_mapping and
 * i_security between them), both come from one read, or from one read
 * each, and s_dev from another.
 */
static __always_inline __u32 inode_id(struct inode *inode, __u64 *ino)
{
	/* a local type: CO-RE relocates the kernel's, not this */
	struct {
		struct super_block *sb;
		__u64 between[2];
		__u64 ino;
	} w = {};
	struct super_block *sb;

	if (PATH_DIRECT) {
		*ino = KREAD(struct inode, inode, i_ino);
		return KREAD(struct inode, inode, i_sb, s_dev);
	}
	if (bpf_core_field_offset(struct inode, i_ino) - bpf_core_field_offset(struct inode, i_sb) ==
		    offsetof(typeof(w), ino) &&
	    bpf_core_field_size(struct inode, i_ino) == sizeof(w.ino)) {
		bpf_probe_read_kernel(&w, sizeof(w), &inode->i_sb);
	} else {
		w.sb = BPF_CORE_READ(inode, i_sb);
		w.ino = BPF_CORE_READ(inode, i_ino);
	}
	*ino = w.ino;
	/* through a plain pointer: the read's relocation is the kernel type's */
	sb = w.sb;
	return BPF_CORE_READ(sb, s_dev);
}

/* the current thread's own storage (CALL_STORE), created when create is
 * set and the thread has none; NULL when there is none */
static __always_inline struct file_call *task_call(__u64 create)
{
	return bpf_task_storage_get(&call_store, bpf_get_current_task_btf(), NULL,
				    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}

/* at sys_enter: where the call is built, its thread's slot or storage (the
 * stash itself), else the scratch (then stashed in file_calls) */
static __always_inline struct file_call *enter_call(struct file_scratch *s)
{
	__u32 tid = bpf_get_current_pid_tgid();

	if (tid < CALL_SLOTS)
		return bpf_map_lookup_elem(&call_slots, &tid);
	if (CALL_STORE)
		return task_call(1);
	return &s->call;
}

/* a call built by enter_call() is stashed: in file_calls when it was built
 * in the scratch (a failed update is counted at sys_exit, which finds
 * nothing) */
static __always_inline void enter_stash(__u64 id, struct file_call *c)
{
	if ((__u32)id >= CALL_SLOTS && !CALL_STORE)
		bpf_map_update_elem(&file_calls, &id, c, BPF_ANY);
}

/*
 * At sys_exit: the call sys_exit works on, copied from its stash. One map
 * for every call: were it the slot for some threads and the scratch for
 * the others, the verifier would walk each record builder once for each.
 */
static __always_inline struct file_call *current_call(void)
{
	struct file_scratch *s = scratch();

	return s ? &s->call : NULL;
}

/* the first n bytes (a constant multiple of 8) of a stashed call into dst,
 * a word at a time: loads and stores, no helper call */
static __always_inline void call_copy(struct file_call *dst, const struct file_call *src, __u32 n)
{
	const __u64 *from = (const __u64 *)src;
	__u64 *to = (__u64 *)dst;
	__u32 i;

	ES_UNROLL
	for (i = 0; i < n / 8; i++)
		to[i] = from[i];
}

/* the current thread's stashed call, in its slot, its storage or
 * file_calls; NULL when none is */
static __always_inline struct file_call *stashed_call(__u64 id)
{
	__u32 tid = (__u32)id;
	struct file_call *c;

	if (tid < CALL_SLOTS)
		c = bpf_map_lookup_elem(&call_slots, &tid);
	else if (CALL_STORE)
		c = task_call(0);
	else
		return bpf_map_lookup_elem(&file_calls, &id);
	return c && c->tid == tid ? c : NULL;
}

/* the stashed call of the thread id done with: its slot or storage freed,
 * or its entry deleted */
static __always_inline void unstash_call(__u64 id, struct file_call *c)
{
	if ((__u32)id < CALL_SLOTS || CALL_STORE)
		c->tid = 0;
	else
		bpf_map_delete_elem(&file_calls, &id);
}

/* where put_user_str() and put_abs_path() take the caller's string from:
 * its memory, check (see arg_source()), or the call's sys_enter copy of its
 * path when that is whole (put_user_str() only) */
#define FROM_USER 0
#define FROM_CHECK 1
#define FROM_COPY 2

/*
 * The caller's string into buf at off, at most max bytes with the NUL,
 * from where from says (at uptr for FROM_USER). Returns its length, with
 * PATH_TRUNCATED when it did not fit or could not be read.
 */
ES_FUNC int put_user_str(__u32 off, __u64 uptr, __u32 max, __u32 from)
{
	struct file_scratch *s = scratch();
	struct file_call *call;
	const __u64 *src;
	__u64 *dst;
	__u32 k;
	long n;
	char c = 0;

	if (!s || !uptr || !max)
		return uptr ? PATH_TRUNCATED : 0;
	if (max > PATH_LEN)
		max = PATH_LEN;
	/* an identity on [1, PATH_LEN] that the verifier can see */
	asm volatile("" : "+r"(max));
	max = ((max - 1) & PATH_MASK) + 1;
	if (from == FROM_COPY) {
		call = current_call();
		if (!call)
			return PATH_TRUNCATED;
		n = call->arg[0].len;
		if (n > ARG_WHOLE || n >= max)
			return PATH_TRUNCATED;
		/* the whole copy, a word at a time, not a helper call: the
		 * record ends at n, and buf has room past any offset */
		dst = (__u64 *)&s->buf[off & FILE_OFF_MASK];
		src = (const __u64 *)call->arg[0].head;
		for (k = 0; k < ARG_COPY_LEN / 8; k++)
			dst[k] = src[k];
		return n;
	}
	if (from == FROM_CHECK) {
		n = bpf_probe_read_kernel_str(&s->buf[off & FILE_OFF_MASK], max, s->check);
		if (n <= 0)
			return PATH_TRUNCATED;
		return (n - 1) | (s->check_len >= max || s->check_cut ? PATH_TRUNCATED : 0);
	}
	n = bpf_probe_read_user_str(&s->buf[off & FILE_OFF_MASK], max, (const void *)uptr);
	if (n <= 0)
		return PATH_TRUNCATED;
	if (n < max)
		return n - 1;
	/* the buffer is full: an exact fit only if the string ends here */
	bpf_probe_read_user(&c, 1, (const void *)(uptr + n - 1));
	return (n - 1) | (c ? PATH_TRUNCATED : 0);
}

/* a struct path resolved into buf at off; length | PATH_TRUNCATED */
ES_FUNC int put_path(__u32 off, __u64 path_ptr)
{
	struct file_scratch *s = scratch();
	__u32 zero = 0, ret, len;
	struct path_buf *p;

	if (!s || !path_ptr)
		return 0;
	ret = path_resolve(path_ptr);
	p = bpf_map_lookup_elem(&path_buf, &zero);
	len = ret & PATH_MASK;
	if (!p || !len)
		return 0;
	bpf_probe_read_kernel(&s->buf[off & FILE_OFF_MASK], len, p->buf);
	return len | (ret & PATH_TRUNCATED);
}

/*
 * The absolute path the caller named with (dirfd, string), into buf at off:
 * the base directory resolved from the kernel's structures (the root for an
 * absolute string, so a chroot shows; the cwd for AT_FDCWD; else dirfd's
 * file, which is also the target itself for an empty string or no string,
 * as with AT_EMPTY_PATH or fchmod), then the string as passed. At most
 * PATH_LEN - 1 bytes; length | PATH_TRUNCATED.
 */
ES_FUNC int put_abs_path(__u32 off, __s32 dirfd, __u64 uptr, __u32 from)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	struct file_scratch *s = scratch();
	struct file *f;
	__u32 n, len, trunc;
	__u64 base = 0;
	char c = 0;

	if (!s)
		return 0;
	if (from == FROM_CHECK) {
		c = s->check[0];
	} else if (uptr && bpf_probe_read_user(&c, 1, (const void *)uptr)) {
		return PATH_TRUNCATED;
	}
	if (c == '/')
		base = (__u64)&fs->root;
	else if (dirfd == FILE_AT_FDCWD)
		base = (__u64)&fs->pwd;
	else if ((f = fd_file(task, dirfd)))
		base = (__u64)&f->f_path;
	if (base && base == s->base) {
		n = s->base_n;
		bpf_probe_read_kernel(&s->buf[off & FILE_OFF_MASK], n & PATH_MASK, &s->buf[s->base_off & FILE_OFF_MASK]);
	} else {
		n = base ? put_path(off, base) : 0;
		s->base = base;
		s->base_off = off;
		s->base_n = n;
	}
	len = n & PATH_MASK;
	trunc = n & PATH_TRUNCATED;
	if (!c)
		return len | trunc;
	if (len + 2 > PATH_LEN)
		return len | PATH_TRUNCATED;
	if (len == 1) {
		/* the base is "/": an absolute string brings its own slash */
		if (c == '/')
			len = 0;
	} else if (len && c != '/') {
		s->buf[(off + len) & FILE_OFF_MASK] = '/';
		len++;
	}
	n = put_user_str(off + len, uptr, PATH_LEN - len, from);
	return (len + (n & PATH_MASK)) | trunc | (n & PATH_TRUNCATED);
}

/* words hashed per hash_chunk() call */
#define HASH_WORDS 8

/*
 * HASH_WORDS 8-byte words of the string of len bytes in check,
 * from byte i, folded into h; bytes past the string are masked off. A
 * global function, for the reason dotdot_chunk() is one. Not a
 * cryptographic hash: keyed by a random seed per call, a change the caller
 * makes cannot be aimed at a collision.
 */
ES_FUNC __u64 hash_chunk(__u32 len, __u32 i, __u64 h)
{
	struct file_scratch *s = scratch();
	__u32 k, r;
	__u64 w;

	if (!s)
		return h;
	for (k = 0; k < HASH_WORDS; k++, i += 8) {
		if (i >= len)
			break;
		w = *(__u64 *)&s->check[i & (PATH_LEN - 8)];
		r = len - i;
		if (r < 8)
			w &= (1ULL << (8 * r)) - 1;
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h;
}

/* the keyed hash of the string of len bytes in check */
static __always_inline __u64 str_hash(__u32 len, __u32 seed)
{
	__u64 h = (((__u64)seed << 32) | seed) ^ 0xcbf29ce484222325ULL ^ len;
	__u32 i;

	for (i = 0; i < PATH_LEN; i += 8 * HASH_WORDS) {
		if (i >= len)
			break;
		h = hash_chunk(len, i, h);
	}
	return h;
}

/*
 * At sys_enter, for a string longer than ARG_WHOLE: its length and keyed
 * hash into the call being built (enter_call()), which = 0 for path, 1 for
 * new_path. The call is looked up after the hash: the verifier then walks
 * the hash's loop once, not once for each map the call may be in.
 */
ES_FUNC int arg_hash(__u32 which, __u64 uptr)
{
	struct file_scratch *s = scratch();
	struct file_call *c;
	__u32 len, seed;
	__u64 hash;
	long n;

	if (!s)
		return 0;
	n = bpf_probe_read_user_str(s->check, PATH_LEN, (const void *)uptr);
	if (n <= 0)
		return 0;
	len = (n - 1) & PATH_MASK;
	seed = bpf_get_prandom_u32();
	hash = str_hash(len, seed);
	c = enter_call(s);
	if (!c)
		return 0;
	c->arg[which & 1].len = len;
	c->arg[which & 1].seed = seed;
	c->arg[which & 1].hash = hash;
	return 0;
}

/*
 * At sys_enter: the caller's string at uptr into c, the call being built
 * (enter_call()), which = 0 for path, 1 for new_path. A short string is
 * kept whole, which is both its check and its copy: one read. A longer one also gets its
 * length and a keyed hash of all of it, unless short_only (an open's: its
 * path comes from the file it opened when it succeeds). A string sys_enter
 * cannot read (not resident: the kernel will fault its page in), or a long
 * one with short_only, stays unchecked. Inline: the short string's read is
 * every file call's, and the call is at hand.
 */
static __always_inline int arg_capture(struct file_call *c, __u32 which, __u64 uptr, __u32 short_only)
{
	struct arg_copy *a;
	long n;

	a = &c->arg[which & 1];
	a->len = ARG_UNREAD;
	if (!uptr)
		return 0;
	n = bpf_probe_read_user_str(a->head, sizeof(a->head), (const void *)uptr);
	if (n <= 0)
		return 0;
	if (n - 1 <= ARG_WHOLE) {
		a->len = n - 1;
		return 0;
	}
	if (short_only)
		return 0;
	return arg_hash(which, uptr);
}

/* with arg_source()'s PATH_SOURCE_*: check holds the string the record is
 * to carry (what sys_exit read, or the sys_enter copy) */
#define SRC_CHECK 0x100

/* the sys_enter copy of a string kept whole into check */
static __always_inline void check_from_copy(struct file_scratch *s, struct arg_copy *a)
{
	bpf_probe_read_kernel(s->check, sizeof(a->head), a->head);
	s->check_len = a->len;
	s->check_cut = 0;
}

/*
 * At sys_exit, before the record is built: where the call's string which
 * (0: path, 1: new_path) came from, reading the caller's memory once into
 * check, from which the record's strings are then copied (SRC_CHECK). PATH_SOURCE_KERNEL for no string or an empty one
 * (the path is then the fd's, or the base directory's); PATH_SOURCE_ARG
 * when the caller's memory holds what sys_enter read; PATH_SOURCE_ARG_CHANGED
 * when it does not, reported from the sys_enter copy when that is whole;
 * PATH_SOURCE_ARG_UNCHECKED when sys_enter could not read it.
 */
ES_FUNC int arg_source(__u32 which)
{
	struct file_call *c = current_call();
	struct file_scratch *s = scratch();
	__u64 uptr, x, *now, *then;
	struct arg_copy *a;
	__u32 len, i, k;
	long n;

	if (!c || !s)
		return PATH_SOURCE_ARG_UNCHECKED;
	a = &c->arg[which & 1];
	uptr = which ? c->new_path : c->path;
	if (!uptr)
		return PATH_SOURCE_KERNEL;
	len = a->len;
	if (len == ARG_UNREAD)
		return PATH_SOURCE_ARG_UNCHECKED;
	if (len > ARG_WHOLE) {
		n = bpf_probe_read_user_str(s->check, PATH_LEN, (const void *)uptr);
		if (n <= 0)
			return PATH_SOURCE_ARG_CHANGED;
		s->check_len = (n - 1) & PATH_MASK;
		s->check_cut = n == PATH_LEN;
		if (s->check_len == len && str_hash(len, a->seed) == a->hash)
			return PATH_SOURCE_ARG | SRC_CHECK;
		return PATH_SOURCE_ARG_CHANGED | SRC_CHECK;
	}
	/* kept whole: compare it, a word at a time, bytes past it masked off */
	n = bpf_probe_read_user_str(s->check, ARG_COPY_LEN, (const void *)uptr);
	if (n - 1 != len) {
		check_from_copy(s, a);
		return PATH_SOURCE_ARG_CHANGED | SRC_CHECK;
	}
	now = (__u64 *)s->check;
	then = (__u64 *)a->head;
	for (k = 0; k < ARG_COPY_LEN / 8; k++) {
		i = 8 * k;
		if (i >= len)
			break;
		x = now[k] ^ then[k];
		if (len - i < 8)
			x &= (1ULL << (8 * (len - i))) - 1;
		if (x) {
			check_from_copy(s, a);
			return PATH_SOURCE_ARG_CHANGED | SRC_CHECK;
		}
	}
	s->check_len = len;
	s->check_cut = 0;
	return (len ? PATH_SOURCE_ARG : PATH_SOURCE_KERNEL) | SRC_CHECK;
}

/* with PATH_SOURCE_KERNEL at a successful open: the record's arg_path is the
 * call's sys_enter copy of its path */
#define SRC_COPY 0x200

/* the from argument of put_user_str() and put_abs_path() */
#define FROM(src) (((src) & SRC_CHECK) ? FROM_CHECK : ((src) & SRC_COPY) ? FROM_COPY : FROM_USER)

static __always_inline void fill_head(void *rec, long ret, __u32 nr)
{
	struct file_scratch *s = scratch();
	struct file_head *h = rec;

	/* no base directory resolved yet for this record */
	if (s)
		s->base = 0;
	h->hdr.ts_ns = ES_NOW();
	fill_current_task_ctx(&h->task);
	h->task._pad0 = 0;
	h->sys.result = ret;
	h->sys.syscall_nr = nr;
	h->sys._pad0 = 0;
}

/* per byte of v, 0x80 where the byte is zero, else 0 (exact: no carries) */
static __always_inline __u64 zero_bytes(__u64 v)
{
	__u64 low7 = 0x7f7f7f7f7f7f7f7fULL;

	return ~(((v & low7) + low7) | v | low7);
}

/* reads per dotdot_chunk() call: 16 reads cover 80 bytes of path */
#define DOTDOT_READS 16
#define DOTDOT_STRIDE 5

/*
 * Whether the path of length len at buf[off] has a ".." component among the
 * DOTDOT_READS 8-byte reads starting at byte i (nonzero if so).
 *
 * The reads are 5 apart, so every 4-byte window ("/../", or "/.." and the
 * end) lies inside one read, and there is no branch on the bytes. A global
 * function: the verifier walks its reads once per program, and the caller's
 * loop over a whole PATH_LEN costs it only a call per chunk, where reads
 * inline in the loop would be walked again for every chunk.
 * Reads past the path stay inside buf (its last PATH_LEN bytes are slack);
 * their bytes are masked off.
 */
ES_FUNC __u64 dotdot_chunk(__u32 off, __u32 len, __u32 i)
{
	struct file_scratch *s = scratch();
	__u64 ones = 0x0101010101010101ULL, hit = 0;
	__u32 k;

	if (!s)
		return 0;
	for (k = 0; k < DOTDOT_READS; k++, i += DOTDOT_STRIDE) {
		const void *p = &s->buf[(off + i) & FILE_OFF_MASK];
		__u64 x, r = (__u64)len - i, over, in, mask, end, slash, dot;

		if (i >= len)
			break;
		over = (8 - r) >> 63;
		/* one unaligned load (x86 and arm64 have them; the verifier
		 * requires alignment only where the CPU does), not 8 byte loads */
		asm volatile("%0 = *(u64 *)(%1 + 0)" : "=r"(x) : "r"(p));
		/* in = min(r, 8), the bytes of x inside the path; hidden from
		 * clang, which would make a branch of it */
		asm volatile("" : "+r"(over));
		in = r + ((8 - r) & -over);
		mask = ~((~0ULL << (8 * in - 1)) << 1);
		/* the end of the path counts as a '/' */
		end = (0x80ULL << (8 * in - 1)) << 1;
		slash = (zero_bytes(x ^ (ones * '/')) & mask) | end;
		dot = zero_bytes(x ^ (ones * '.')) & mask;
		/* "/" "." "." "/" at bytes k..k+3, k = 0..4 */
		hit |= slash & (dot >> 8) & (dot >> 16) & (slash >> 24) & 0xffffffffffULL;
	}
	return hit;
}

/*
 * The path prefix rule excluding the path at buf[off], n = its length |
 * PATH_TRUNCATED, or -1. Never a truncated path, nor one with a ".."
 * component: joined from the caller's string, it can lead out of the
 * excluded directory ("/var/log/app/../../../etc/shadow"). The ".." scan
 * runs only after a prefix matched.
 */
ES_FUNC int path_rule(__u32 off, __u32 n)
{
	struct file_scratch *s = scratch();
	__u32 i, len = n & PATH_MASK;
	int rule;

	if (!s || (n & PATH_TRUNCATED))
		return -1;
	rule = path_prefix_rule(&s->buf[off & FILE_OFF_MASK], len);
	if (rule < 0)
		return -1;
	for (i = 0; i < PATH_LEN && i < len; i += DOTDOT_READS * DOTDOT_STRIDE)
		if (dotdot_chunk(off, len, i))
			return -1;
	return rule;
}

#define PATH_N(len, truncated) ((len) | ((truncated) ? PATH_TRUNCATED : 0))

/* a path whose string changed during the call, or could not be checked,
 * is never excluded: its caller may be steering the event under a rule */
#define UNTRUSTED(source) ((source) >= PATH_SOURCE_ARG_CHANGED)

/*
 * Path prefix exclusions, checked on a built record before it goes to the
 * ring: true, the hit counted under the rule of its path field, when that
 * path is excluded. Rename and link need both names excluded, symlink both
 * the link and its target (a relative target never matches): moving a
 * file out of an excluded directory is still seen. type is a constant at
 * every call, so only its case remains.
 */
static __always_inline int paths_excluded(struct file_scratch *s, __u32 type)
{
	int rule = -1;

	if (!(excl_active_mask() & EXCL_ACTIVE_PATH))
		return 0;
	switch (type) {
/* a record whose one path follows its fixed part */
#define ONE_PATH(record)                                                                         \
	{                                                                                        \
		struct record *e = (void *)s->buf;                                               \
		if (UNTRUSTED(e->path_source))                                                   \
			return 0;                                                                \
		rule = path_rule(sizeof(*e), PATH_N(e->path_len, e->path_truncated));          \
		break;                                                                           \
	}
	case EVENT_FILE_OPEN:
	case EVENT_FILE_CREATE:
		ONE_PATH(file_open_event)
	case EVENT_FILE_UNLINK:
		ONE_PATH(file_unlink_event)
	case EVENT_DIR_CREATE:
		ONE_PATH(dir_create_event)
	case EVENT_FILE_CHMOD:
		ONE_PATH(file_chmod_event)
	case EVENT_FILE_CHOWN:
		ONE_PATH(file_chown_event)
#undef ONE_PATH
	case EVENT_FILE_RENAME:
	case EVENT_FILE_LINK: {
		struct file_rename_event *e = (void *)s->buf;

		if (UNTRUSTED(e->path_source) || UNTRUSTED(e->new_path_source))
			return 0;
		rule = path_rule(sizeof(*e), PATH_N(e->path_len, e->path_truncated));
		if (rule >= 0 && path_rule(sizeof(*e) + e->path_len + e->arg_path_len,
					   PATH_N(e->new_path_len, e->new_path_truncated)) < 0)
			rule = -1;
		break;
	}
	case EVENT_FILE_SYMLINK: {
		struct file_symlink_event *e = (void *)s->buf;

		if (UNTRUSTED(e->path_source) || UNTRUSTED(e->target_source))
			return 0;
		rule = path_rule(sizeof(*e) + e->target_len, PATH_N(e->path_len, e->path_truncated));
		if (rule >= 0 && path_rule(sizeof(*e), PATH_N(e->target_len, e->target_truncated)) < 0)
			rule = -1;
		break;
	}
	}
	if (rule < 0)
		return 0;
	excl_hit(rule, type);
	return 1;
}

static __always_inline void submit(ES_CTX_PARAM struct file_scratch *s, __u32 type, __u32 size, int truncated)
{
	struct event_header *h = (struct event_header *)s->buf;

	if (size > sizeof(s->buf) || paths_excluded(s, type))
		return;
	h->type = type;
	h->size = size;
	if (truncated)
		stat_inc(type, STAT_TRUNCATED);
	if (es_output(ctx, &activity_events, s->buf, ES_CLAMP(size, sizeof(s->buf)))) {
		stat_inc(type, STAT_DROPPED);
		return;
	}
	stat_inc(type, STAT_PRODUCED);
}

/*
 * The kernel's path checks (security_path_unlink, _mkdir, ...; built with
 * CONFIG_SECURITY_PATH) are called once the syscall's string has been
 * looked up, with the directory and the entry it names: where the kernel
 * lets us hook them, the path each resolves to is recorded for the call's
 * sys_exit (file_kpaths), which reports it as the kernel's
 * (PATH_SOURCE_KERNEL) instead of the caller's string. Variants as for
 * rename_target. A failed lookup never reaches the check: that call's path
 * is the caller's string, checked at sys_exit.
 */

/* path_resolve_at() of (dentry, vfsmnt) into file_kpaths for the current
 * call's path which, when that call is an op */
ES_FUNC int kpath_put(__u32 op, __u32 which, __u64 dentry, __u64 vfsmnt)
{
	struct kpath_key key = { .id = bpf_get_current_pid_tgid(), .which = which & 1 };
	struct file_call *c = stashed_call(key.id);
	struct file_scratch *s = scratch();
	struct path_buf *p;
	struct kpath *k;
	__u32 zero = 0, n;

	if (!c || !s || c->op != op || !dentry || !vfsmnt)
		return 0;
	n = path_resolve_at(dentry, vfsmnt);
	p = bpf_map_lookup_elem(&path_buf, &zero);
	if (!p)
		return 0;
	/* staged in the scratch buffer: an update copies a whole value */
	k = (struct kpath *)s->buf;
	k->n = n;
	bpf_probe_read_kernel(k->buf, n & PATH_MASK, p->buf);
	if (!bpf_map_update_elem(&file_kpaths, &key, k, BPF_ANY))
		c->kpaths |= 1 << key.which;
	return 0;
}

/* a symlink's target as the kernel copied it, into file_kpaths as path 0 */
ES_FUNC int kpath_put_str(__u64 str)
{
	struct kpath_key key = { .id = bpf_get_current_pid_tgid(), .which = 0 };
	struct file_call *c = stashed_call(key.id);
	struct file_scratch *s = scratch();
	struct kpath *k;
	long n;

	if (!c || !s || c->op != FOP_SYMLINK || !str)
		return 0;
	k = (struct kpath *)s->buf;
	n = bpf_probe_read_kernel_str(k->buf, PATH_LEN, (const void *)str);
	if (n <= 0)
		return 0;
	/* a target the kernel took is shorter than PATH_LEN: never cut */
	k->n = (n - 1) & PATH_MASK;
	if (!bpf_map_update_elem(&file_kpaths, &key, k, BPF_ANY))
		c->kpaths |= 1;
	return 0;
}

/* the dentry of a struct path in the mount of another */
#define IN_MNT(d, p) (d), (__u64)BPF_CORE_READ((struct path *)(p), mnt)
/* the parts of a struct path */
#define PATH_PARTS(p) (__u64)BPF_CORE_READ((struct path *)(p), dentry), (__u64)BPF_CORE_READ((struct path *)(p), mnt)

static __always_inline int on_path_dentry(__u32 op, __u64 dir, __u64 dentry)
{
	return kpath_put(op, 0, IN_MNT(dentry, dir));
}

static __always_inline int on_path(__u32 op, __u64 path)
{
	return kpath_put(op, 0, PATH_PARTS(path));
}

static __always_inline int on_rename(__u64 old_dir, __u64 old_dentry, __u64 new_dir, __u64 new_dentry)
{
	kpath_put(FOP_RENAME, 0, IN_MNT(old_dentry, old_dir));
	return kpath_put(FOP_RENAME, 1, IN_MNT(new_dentry, new_dir));
}

/* a link lives in the mount of the new name (else EXDEV before the check) */
static __always_inline int on_link(__u64 old_dentry, __u64 new_dir, __u64 new_dentry)
{
	kpath_put(FOP_LINK, 0, IN_MNT(old_dentry, new_dir));
	return kpath_put(FOP_LINK, 1, IN_MNT(new_dentry, new_dir));
}

static __always_inline int on_symlink(__u64 dir, __u64 dentry, __u64 old_name)
{
	kpath_put_str(old_name);
	return kpath_put(FOP_SYMLINK, 1, IN_MNT(dentry, dir));
}

/*
 * A hook's argument as a plain number: a BPF LSM or fentry program reads
 * its arguments as typed kernel pointers, which a global function cannot
 * take.
 */
static __always_inline __u64 arg_of(unsigned long long *ctx, int i)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), &ctx[i]);
	return v;
}

/* each check as a BPF LSM program (observe only: never deny), an fentry
 * program and a kprobe; call is on_*(...) of the arguments A(0), A(1), ... */
#define PATH_HOOK(name, call)                                                 \
	SEC("lsm/path_" #name)                                                \
	int handle_path_##name##_lsm(unsigned long long *ctx)                 \
	{                                                                     \
		call(LSM_ARG);                                                \
		return 0;                                                     \
	}                                                                     \
	SEC("fentry/security_path_" #name)                                    \
	int handle_path_##name##_fentry(unsigned long long *ctx)              \
	{                                                                     \
		call(LSM_ARG);                                                \
		return 0;                                                     \
	}                                                                     \
	SEC("kprobe/security_path_" #name)                                    \
	int handle_path_##name##_kprobe(struct pt_regs *ctx)                  \
	{                                                                     \
		call(KPROBE_ARG);                                             \
		return 0;                                                     \
	}

#define LSM_ARG(i) arg_of(ctx, i)
#define KPROBE_ARG(i) ((i) == 0 ? PT_REGS_PARM1(ctx) : (i) == 1 ? PT_REGS_PARM2(ctx) : (i) == 2 ? PT_REGS_PARM3(ctx) : PT_REGS_PARM4(ctx))

/* (dir, dentry, ...): the entry unlink, rmdir, mkdir, mknod act on */
#define CALL_UNLINK(A) on_path_dentry(FOP_UNLINK, A(0), A(1))
#define CALL_MKDIR(A) on_path_dentry(FOP_MKDIR, A(0), A(1))
#define CALL_MKNOD(A) on_path_dentry(FOP_MKNOD, A(0), A(1))
/* (path, ...): the file chmod and chown act on */
#define CALL_CHMOD(A) on_path(FOP_CHMOD, A(0))
#define CALL_CHOWN(A) on_path(FOP_CHOWN, A(0))
#define CALL_RENAME(A) on_rename(A(0), A(1), A(2), A(3))
#define CALL_LINK(A) on_link(A(0), A(1), A(2))
#define CALL_SYMLINK(A) on_symlink(A(0), A(1), A(2))

PATH_HOOK(unlink, CALL_UNLINK)
PATH_HOOK(rmdir, CALL_UNLINK)
PATH_HOOK(mkdir, CALL_MKDIR)
PATH_HOOK(mknod, CALL_MKNOD)
PATH_HOOK(chmod, CALL_CHMOD)
PATH_HOOK(chown, CALL_CHOWN)
PATH_HOOK(rename, CALL_RENAME)
PATH_HOOK(link, CALL_LINK)
PATH_HOOK(symlink, CALL_SYMLINK)

/*
 * At sys_exit: the path the kernel resolved for the call's path which,
 * into buf at off; its length | PATH_TRUNCATED, or KPATH_NONE when no
 * path_* hook recorded one (none runs here, the lookup failed, or the
 * entry was evicted).
 */
#define KPATH_NONE 0xffffffff

ES_FUNC __u32 put_kpath(__u32 off, __u32 which)
{
	struct kpath_key key = { .id = bpf_get_current_pid_tgid(), .which = which & 1 };
	struct file_call *c = current_call();
	struct file_scratch *s = scratch();
	struct kpath *k;
	__u32 n;

	if (!c || !s || !(c->kpaths & (1 << key.which)))
		return KPATH_NONE;
	k = bpf_map_lookup_elem(&file_kpaths, &key);
	if (!k)
		return KPATH_NONE;
	n = k->n;
	bpf_probe_read_kernel(&s->buf[off & FILE_OFF_MASK], n & PATH_MASK, k->buf);
	bpf_map_delete_elem(&file_kpaths, &key);
	return n;
}

/* one tail string: its length into len_field, its flag into trunc_field */
#define PUT(expr, len_field, trunc_field)                   \
	do {                                                \
		__u32 _n = (expr);                          \
		e->len_field = _n & PATH_MASK;              \
		e->trunc_field = (_n & PATH_TRUNCATED) != 0; \
		trunc |= e->trunc_field;                    \
		off += _n & PATH_MASK;                      \
	} while (0)

/*
 * A record's path and arg_path from the call's string which (0: path, 1:
 * new_path), and where the path came from (source_f): the path the kernel
 * resolved where a path_* hook recorded one, else the caller's string
 * joined to its base directory. arg_path is the caller's string either way.
 */
#define PATHS(which, dirfd_, uptr, path_f, trunc_f, arg_f, arg_trunc_f, source_f)            \
	do {                                                                                   \
		int _src = arg_source(which);                                                  \
		__u32 _k = put_kpath(off, which);                                              \
		if (_k != KPATH_NONE) {                                                        \
			e->source_f = PATH_SOURCE_KERNEL;                                      \
			PUT(_k, path_f, trunc_f);                                              \
		} else {                                                                       \
			e->source_f = _src & 0xff;                                             \
			PUT(put_abs_path(off, dirfd_, uptr, FROM(_src)), path_f, trunc_f); \
		}                                                                              \
		PUT(put_user_str(off, uptr, PATH_LEN, FROM(_src)), arg_f, arg_trunc_f); \
	} while (0)

/* the record's path and arg_path, from the call's path string */
#define ONE_STRING() PATHS(0, c->dirfd, c->path, path_len, path_truncated, arg_path_len, arg_path_truncated, path_source)

/* repeated opens of one file by one process within the window are counted,
 * not reported; failed opens are always reported */
static __always_inline int open_is_repeat(__u64 ino, __u32 dev, __u32 flags)
{
	struct dedup_key key = {};
	__u64 now = ES_NOW();
	__u64 *last;

	key.ino = ino;
	key.dev = dev;
	key.tgid = bpf_get_current_pid_tgid() >> 32;
	key.flags = flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND);
	last = bpf_map_lookup_elem(&file_dedup, &key);
	if (last && now - *last < cfg_file_dedup_ns)
		return 1;
	bpf_map_update_elem(&file_dedup, &key, &now, BPF_ANY);
	return 0;
}

/* st_dev as user space sees it (new_encode_dev) */
static __always_inline __u32 user_dev(__u32 kdev)
{
	__u32 major = kdev >> 20, minor = kdev & 0xfffff;

	return (minor & 0xff) | (major << 8) | ((minor & ~0xffU) << 12);
}

/*
 * An open's record from the call in the scratch. kname: the open was seen
 * inside the kernel (open_fexit()): kfile is the file it opened (0: it
 * failed) and check holds the kernel's copy of the name; else the file is
 * the one at the returned fd.
 */
ES_FUNC int emit_open(ES_CTX_PARAM long ret, __u64 kfile, __u32 kname)
{
	struct file_call *c = current_call();
	struct file_scratch *s = scratch();
	struct file_open_event *e;
	struct file *file = NULL;
	struct inode *inode;
	int want_open, want_create, src, trunc = 0;
	__u32 off = sizeof(*e);

	if (!c || !s)
		return 0;
	e = (struct file_open_event *)s->buf;
	e->flags = c->flags;
	e->mode = c->mode;
	if (kname)
		file = (struct file *)kfile;
	else if (ret >= 0)
		file = (struct file *)map_number(&s->number, current_fd_file(ret));
	e->created = file && (file_fmode(file) & FMODE_CREATED);
	/* one call, one record: an open that created its file is a FileCreate
	 * when that kind is on, else a FileOpen whose created says so (never a
	 * repeat). A failed O_CREAT open may have met an existing file, and
	 * O_CREAT is the caller's to add: a FileOpen, unless only FileCreate is on */
	want_open = kind_on(EVENT_FILE_OPEN);
	want_create = kind_on(EVENT_FILE_CREATE) && (e->created || (ret < 0 && (e->flags & O_CREAT) && !want_open));
	want_open = want_open && !want_create;
	e->ino = 0;
	e->dev = 0;
	if (file) {
		inode = file_inode_of(file);
		e->dev = user_dev(inode_id(inode, &e->ino));
		if (want_open && !e->created && cfg_file_dedup_ns && open_is_repeat(e->ino, e->dev, e->flags)) {
			stat_inc(EVENT_FILE_OPEN, STAT_DEDUPLICATED);
			want_open = 0;
		}
	}
	if (!want_open && !want_create)
		return 0;
	/* an open that succeeded names the file it opened, whatever the
	 * string, and arg_path is the string as sys_enter read it where that
	 * is kept whole: only a failed open's string is checked */
	if (kname) {
		/* the name the kernel used: no later write can change it */
		src = PATH_SOURCE_KERNEL | SRC_CHECK;
	} else if (!file) {
		src = arg_source(0);
	} else if (c->arg[0].len <= ARG_WHOLE) {
		src = PATH_SOURCE_KERNEL | SRC_COPY;
	} else {
		src = PATH_SOURCE_KERNEL;
	}
	fill_head(e, ret, c->nr);
	e->dirfd = c->dirfd;
	e->resolved = file != NULL;
	e->_pad0[0] = 0;
	e->_pad0[1] = 0;
	e->_pad0[2] = 0;
	e->path_source = src & 0xff;
	if (file)
		PUT(put_path(off, (__u64)&file->f_path), path_len, path_truncated);
	else
		PUT(put_abs_path(off, c->dirfd, c->path, FROM(src)), path_len, path_truncated);
	PUT(put_user_str(off, c->path, PATH_LEN, FROM(src)), arg_path_len, arg_path_truncated);
	if (want_open)
		submit(ES_CTX s, EVENT_FILE_OPEN, off, trunc);
	if (want_create)
		submit(ES_CTX s, EVENT_FILE_CREATE, off, trunc);
	return 0;
}

/* mknod, mknodat: a FileCreate of any file type (mode carries S_IFMT) */
ES_FUNC int emit_mknod(ES_CTX_PARAM long ret)
{
	struct file_call *c = current_call();
	struct file_scratch *s = scratch();
	struct file_open_event *e;
	__u32 off = sizeof(*e);
	int trunc = 0;

	if (!c || !s)
		return 0;
	e = (struct file_open_event *)s->buf;
	fill_head(e, ret, c->nr);
	e->ino = 0;
	e->dev = 0;
	e->flags = 0;
	e->mode = c->mode;
	e->dirfd = c->dirfd;
	e->created = ret == 0;
	e->resolved = 0;
	e->_pad0[0] = 0;
	e->_pad0[1] = 0;
	e->_pad0[2] = 0;
	ONE_STRING();
	submit(ES_CTX s, EVENT_FILE_CREATE, off, trunc);
	return 0;
}

ES_FUNC int emit_unlink(ES_CTX_PARAM long ret)
{
	struct file_call *c = current_call();
	struct file_scratch *s = scratch();
	struct file_unlink_event *e;
	__u32 off = sizeof(*e);
	int trunc = 0;

	if (!c || !s)
		return 0;
	e = (struct file_unlink_event *)s->buf;
	fill_head(e, ret, c->nr);
	e->dirfd = c->dirfd;
	e->flags = c->flags;
	e->is_dir = (c->flags & AT_REMOVEDIR) != 0;
	e->_pad1 = 0;
	ONE_STRING();
	submit(ES_CTX s, EVENT_FILE_UNLINK, off, trunc);
	return 0;
}

ES_FUNC int emit_mkdir(ES_CTX_PARAM long ret)
{
	struct file_call *c = current_call();
	struct file_scratch *s = scratch();
	struct dir_create_event *e;
	__u32 off = sizeof(*e);
	int trunc = 0;

	if (!c || !s)
		return 0;
	e = (struct dir_create_event *)s->buf;
	fill_head(e, ret, c->nr);
	e->dirfd = c->dirfd;
	e->mode = c->mode;
	e->_pad0 = 0;
	e->_pad1 = 0;
	ONE_STRING();
	submit(ES_CTX s, EVENT_DIR_CREATE, off, trunc);
	return 0;
}

/*
 * Whether a rename replaced an existing file is decided deep in the VFS,
 * after the syscall tracepoints' view: the kernel's rename permission check
 * (security_inode_rename, called once per vfs_rename with the target
 * dentry) sees it. Where the kernel lets us hook it (a BPF LSM program, an
 * fentry program, or a kprobe; variants tried in that order), the hook
 * marks the thread's stashed call; without one the flag stays unknown.
 * Overlayfs renames in its upper layer too: the marks accumulate.
 */
#define RENAME_SEEN 1
#define RENAME_TARGET_EXISTED 2
#define RENAME_EXCHANGE 2

static __always_inline int rename_target(struct dentry *new_dentry)
{
	struct file_call *c = stashed_call(bpf_get_current_pid_tgid());

	if (!c || c->op != FOP_RENAME)
		return 0;
	c->rename_seen |= RENAME_SEEN;
	/* an exchange swaps two files: nothing is replaced. The flag comes
	 * from the syscall: the LSM hook has no flags argument (and is called
	 * twice for an exchange, the second time with the names swapped) */
	if (!(c->flags & RENAME_EXCHANGE) && BPF_CORE_READ(new_dentry, d_inode))
		c->rename_seen |= RENAME_TARGET_EXISTED;
	return 0;
}

/* LSM_HOOK(int, 0, inode_rename, old_dir, old_dentry, new_dir, new_dentry) */
SEC("lsm/inode_rename")
int BPF_PROG(handle_rename_target_lsm, struct inode *old_dir, struct dentry *old_dentry, struct inode *new_dir,
	     struct dentry *new_dentry)
{
	rename_target(new_dentry);
	return 0; /* observe only: never deny */
}

/* security_inode_rename(old_dir, old_dentry, new_dir, new_dentry, flags) */
SEC("fentry/security_inode_rename")
int BPF_PROG(handle_rename_target_fentry, struct inode *old_dir, struct dentry *old_dentry, struct inode *new_dir,
	     struct dentry *new_dentry)
{
	return rename_target(new_dentry);
}

SEC("kprobe/security_inode_rename")
int BPF_KPROBE(handle_rename_target_kprobe, struct inode *old_dir, struct dentry *old_dentry, struct inode *new_dir,
	       struct dentry *new_dentry)
{
	return rename_target(new_dentry);
}

/* rename and link: old name, new name */
ES_FUNC int emit_pair(ES_CTX_PARAM long ret, __u32 type)
{
	struct file_call *c = current_call();
	struct file_scratch *s = scratch();
	struct file_rename_event *e;
	__u32 off = sizeof(*e), i;
	int trunc = 0;

	if (!c || !s)
		return 0;
	e = (struct file_rename_event *)s->buf;
	fill_head(e, ret, c->nr);
	e->dirfd = c->dirfd;
	e->new_dirfd = c->new_dirfd;
	e->flags = c->flags;
	/* for a link the byte is padding: 0 */
	e->replaced = type != EVENT_FILE_RENAME || ret < 0 ? RENAME_REPLACED_NO
		      : !(c->rename_seen & RENAME_SEEN)	   ? RENAME_REPLACED_UNKNOWN
		      : (c->rename_seen & RENAME_TARGET_EXISTED) ? RENAME_REPLACED_YES
								 : RENAME_REPLACED_NO;
	for (i = 0; i < 5; i++)
		e->_pad0[i] = 0;
	ONE_STRING();
	PATHS(1, c->new_dirfd, c->new_path, new_path_len, new_path_truncated, new_arg_path_len, new_arg_path_truncated,
	      new_path_source);
	submit(ES_CTX s, type, off, trunc);
	return 0;
}

ES_FUNC int emit_chmod(ES_CTX_PARAM long ret)
{
	struct file_call *c = current_call();
	struct file_scratch *s = scratch();
	struct file_chmod_event *e;
	__u32 off = sizeof(*e);
	int trunc = 0;

	if (!c || !s)
		return 0;
	e = (struct file_chmod_event *)s->buf;
	fill_head(e, ret, c->nr);
	e->dirfd = c->dirfd;
	e->mode = c->mode;
	e->flags = c->flags;
	e->_pad0 = 0;
	ONE_STRING();
	submit(ES_CTX s, EVENT_FILE_CHMOD, off, trunc);
	return 0;
}

ES_FUNC int emit_chown(ES_CTX_PARAM long ret)
{
	struct file_call *c = current_call();
	struct file_scratch *s = scratch();
	struct file_chown_event *e;
	__u32 off = sizeof(*e);
	int trunc = 0;

	if (!c || !s)
		return 0;
	e = (struct file_chown_event *)s->buf;
	fill_head(e, ret, c->nr);
	e->dirfd = c->dirfd;
	e->new_uid = c->uid;
	e->new_gid = c->gid;
	e->flags = c->flags;
	e->_pad0 = 0;
	e->_pad1 = 0;
	ONE_STRING();
	submit(ES_CTX s, EVENT_FILE_CHOWN, off, trunc);
	return 0;
}

ES_FUNC int emit_symlink(ES_CTX_PARAM long ret)
{
	struct file_call *c = current_call();
	struct file_scratch *s = scratch();
	struct file_symlink_event *e;
	__u32 off = sizeof(*e), k;
	int src, trunc = 0;

	if (!c || !s)
		return 0;
	e = (struct file_symlink_event *)s->buf;
	fill_head(e, ret, c->nr);
	e->dirfd = c->new_dirfd;
	e->_pad0[0] = 0;
	e->_pad0[1] = 0;
	e->_pad0[2] = 0;
	/* the target is a string the kernel stores, never looked up: the
	 * kernel's copy where the path_symlink hook recorded it */
	k = put_kpath(off, 0);
	if (k != KPATH_NONE) {
		e->target_source = PATH_SOURCE_KERNEL;
		PUT(k, target_len, target_truncated);
	} else {
		src = arg_source(0);
		e->target_source = src & 0xff;
		PUT(put_user_str(off, c->path, PATH_LEN, FROM(src)), target_len, target_truncated);
	}
	PATHS(1, c->new_dirfd, c->new_path, path_len, path_truncated, arg_path_len, arg_path_truncated, path_source);
	submit(ES_CTX s, EVENT_FILE_SYMLINK, off, trunc);
	return 0;
}

/* the kind a call is counted under when it cannot be followed */
static __always_inline __u32 op_event(__u32 op)
{
	switch (op) {
	case FOP_OPEN:
		return EVENT_FILE_OPEN;
	case FOP_MKNOD:
		return EVENT_FILE_CREATE;
	case FOP_UNLINK:
		return EVENT_FILE_UNLINK;
	case FOP_MKDIR:
		return EVENT_DIR_CREATE;
	case FOP_RENAME:
		return EVENT_FILE_RENAME;
	case FOP_CHMOD:
		return EVENT_FILE_CHMOD;
	case FOP_CHOWN:
		return EVENT_FILE_CHOWN;
	case FOP_LINK:
		return EVENT_FILE_LINK;
	}
	return EVENT_FILE_SYMLINK;
}

static __always_inline int op_enabled(__u32 op)
{
	switch (op) {
	case FOP_OPEN:
		return kind_on(EVENT_FILE_OPEN) || kind_on(EVENT_FILE_CREATE);
	case FOP_MKNOD:
		return kind_on(EVENT_FILE_CREATE);
	case FOP_UNLINK:
		return kind_on(EVENT_FILE_UNLINK);
	case FOP_MKDIR:
		return kind_on(EVENT_DIR_CREATE);
	case FOP_RENAME:
		return kind_on(EVENT_FILE_RENAME);
	case FOP_CHMOD:
		return kind_on(EVENT_FILE_CHMOD);
	case FOP_CHOWN:
		return kind_on(EVENT_FILE_CHOWN);
	case FOP_LINK:
		return kind_on(EVENT_FILE_LINK);
	case FOP_SYMLINK:
		return kind_on(EVENT_FILE_SYMLINK);
	}
	return 0;
}

/* openat2's flags and mode, read at sys_enter as the kernel copies them
 * (the uapi layout, not vmlinux.h's: no relocation against a type that
 * kernels before openat2, 5.6, do not have) */
static __always_inline __u32 openat2_how(__u64 uptr, __u32 *mode)
{
	struct {
		__u64 flags, mode, resolve;
	} how = {};

	bpf_probe_read_user(&how, sizeof(how), (const void *)uptr);
	*mode = how.mode;
	return how.flags;
}

static __always_inline void normalise(struct file_call *c, long nr, const __u64 *a)
{
	c->dirfd = FILE_AT_FDCWD;
	c->new_dirfd = FILE_AT_FDCWD;
	switch (nr) {
	case NR_open:
		c->path = a[0];
		c->flags = a[1];
		c->mode = a[2];
		break;
	case NR_creat:
		c->path = a[0];
		c->flags = O_CREAT | O_WRONLY | O_TRUNC;
		c->mode = a[1];
		break;
	case NR_openat:
		c->dirfd = a[0];
		c->path = a[1];
		c->flags = a[2];
		c->mode = a[3];
		break;
	case NR_openat2:
		c->dirfd = a[0];
		c->path = a[1];
		c->flags = openat2_how(a[2], &c->mode);
		break;
	case NR_unlink:
		c->path = a[0];
		break;
	case NR_rmdir:
		c->path = a[0];
		c->flags = AT_REMOVEDIR;
		break;
	case NR_unlinkat:
		c->dirfd = a[0];
		c->path = a[1];
		c->flags = a[2];
		break;
	case NR_mkdir:
	case NR_chmod:
	case NR_mknod:
		c->path = a[0];
		c->mode = a[1];
		break;
	case NR_mkdirat:
	case NR_fchmodat:
	case NR_mknodat:
		c->dirfd = a[0];
		c->path = a[1];
		c->mode = a[2];
		break;
	case NR_fchmodat2:
		c->dirfd = a[0];
		c->path = a[1];
		c->mode = a[2];
		c->flags = a[3];
		break;
	case NR_fchmod:
		c->dirfd = a[0];
		c->mode = a[1];
		break;
	case NR_rename:
	case NR_link:
	case NR_symlink:
		c->path = a[0];
		c->new_path = a[1];
		break;
	case NR_renameat:
	case NR_renameat2:
	case NR_linkat:
		c->dirfd = a[0];
		c->path = a[1];
		c->new_dirfd = a[2];
		c->new_path = a[3];
		c->flags = nr == NR_renameat ? 0 : a[4];
		break;
	case NR_symlinkat:
		c->path = a[0];
		c->new_dirfd = a[1];
		c->new_path = a[2];
		break;
	case NR_chown:
	case NR_lchown:
		c->path = a[0];
		c->uid = a[1];
		c->gid = a[2];
		c->flags = nr == NR_lchown ? AT_SYMLINK_NOFOLLOW : 0;
		break;
	case NR_fchown:
		c->dirfd = a[0];
		c->uid = a[1];
		c->gid = a[2];
		break;
	case NR_fchownat:
		c->dirfd = a[0];
		c->path = a[1];
		c->uid = a[2];
		c->gid = a[3];
		c->flags = a[4];
		break;
	}
}

/*
 * An open with write intent: it may write (O_WRONLY, O_RDWR, and so
 * O_APPEND with either), create (O_CREAT, O_TMPFILE, which needs write
 * access) or truncate (O_TRUNC, even with O_RDONLY). An O_PATH open grants
 * no access to the contents and the kernel ignores those flags with it: it
 * is decided as a read-only open.
 */
static __always_inline int write_intent(__u32 flags)
{
	return !(flags & O_PATH) && (flags & (O_ACCMODE | O_CREAT | O_TRUNC));
}

/* an open's, openat's or openat2's arguments, from its registers a[]
 * (sys_enter's own, or the task's saved ones at sys_exit:
 * read_open_exit_regs()); openat2's flags and mode are in user memory, at
 * a[2] (openat2_how()) */
struct open_args {
	__u64 path;
	__s32 dirfd;
	__u32 flags;
	__u32 mode;
};

static __always_inline void open_args(long nr, const __u64 *a, struct open_args *o)
{
	if (nr == NR_open) {
		o->dirfd = FILE_AT_FDCWD;
		o->path = a[0];
		o->flags = a[1];
		o->mode = a[2];
	} else {
		o->dirfd = a[0];
		o->path = a[1];
		o->flags = a[2];
		o->mode = a[3];
	}
}

/*
 * At an open's sys_enter under the "watched" policy: true for a read-only
 * open, false for an open with write intent, which goes on to the ordinary
 * stash. A read-only open or openat stashes nothing where its sys_exit
 * reads the registers (OPEN_ARGS_AT_EXIT); elsewhere, and for openat2, its
 * few arguments go to the header of its thread's stash (enter_call(): the
 * slot of its exact id, its task storage, else its file_calls entry; no
 * other thread's call can take or overwrite them) with read_only set. With
 * FileOpen off it stashes nothing and clears a call its thread left. None
 * of its strings is read. Whether
 * a read-only open is reported is decided at its sys_exit, from what it
 * opened.
 */
static __always_inline int read_open_enter(long nr, const __u64 *a)
{
	struct open_args o;
	struct file_scratch *s;
	struct file_call *c;
	__u64 id;

	if (nr == NR_creat)
		return 0;
	open_args(nr, a, &o);
	if (nr == NR_openat2)
		o.flags = openat2_how(a[2], &o.mode);
	if (write_intent(o.flags))
		return 0;
	if (OPEN_REGS_CALL(nr))
		return 1;
	id = bpf_get_current_pid_tgid();
	if (!kind_on(EVENT_FILE_OPEN)) {
		/* FileOpen off: a read-only open has nothing to report, and its
		 * exit must find no call its thread left before (one whose exit
		 * program did not run) */
		c = stashed_call(id);
		if (c)
			unstash_call(id, c);
		return 1;
	}
	s = scratch();
	c = s ? enter_call(s) : NULL;
	if (!c)
		return 1;
	c->nr = nr;
	c->op = FOP_OPEN;
	c->flags = o.flags;
	c->path = o.path;
	c->dirfd = o.dirfd;
	c->mode = o.mode;
	c->read_only = 1;
	c->tid = (__u32)id;
	enter_stash(id, c);
	return 1;
}

static __always_inline int file_enter(long nr, __u32 op, const __u64 *args)
{
	struct file_scratch *s;
	struct file_call *c;
	__u64 id;

	if (op == FOP_OPEN && !cfg_read_opens_all && read_open_enter(nr, args))
		return 0;
	/* excluded processes stop here, before anything is stashed */
	if (!op_enabled(op) || excluded_for(op_event(op)))
		return 0;
	s = scratch();
	c = s ? enter_call(s) : NULL;
	if (!c)
		return 0;
	__builtin_memset(c, 0, offsetof(struct file_call, arg));
	c->nr = nr;
	c->op = op;
	normalise(c, nr, args);
	/* the strings sys_exit reads again, to tell whether they changed */
	arg_capture(c, 0, c->path, op == FOP_OPEN);
	if (op == FOP_RENAME || op == FOP_LINK || op == FOP_SYMLINK)
		arg_capture(c, 1, c->new_path, 0);
	else
		c->arg[1].len = ARG_UNREAD;
	id = bpf_get_current_pid_tgid();
	c->tid = (__u32)id;
	enter_stash(id, c);
	return 0;
}

/*
 * A read-only open reported (its file is watched, or it was refused): its
 * arguments go where sys_exit puts a stashed call's, then emit_open() builds
 * the record. path 0 (no stash: the arguments are not known) gives an empty
 * arg_path; the path is the opened file's.
 */
static __always_inline int read_open_report(ES_CTX_PARAM long nr, long ret, __u64 path, __s32 dirfd, __u32 flags,
					    __u32 mode)
{
	struct file_call *c = current_call();

	if (!c)
		return 0;
	__builtin_memset(c, 0, offsetof(struct file_call, arg));
	c->nr = nr;
	c->op = FOP_OPEN;
	c->path = path;
	c->dirfd = dirfd;
	c->new_dirfd = FILE_AT_FDCWD;
	c->flags = flags;
	c->mode = mode;
	/* not read at sys_enter: a failed open's string is unchecked */
	c->arg[0].len = ARG_UNREAD;
	c->arg[1].len = ARG_UNREAD;
	emit_open(ES_CTX ret, 0, 0);
	return 0;
}

/*
 * The opened file of a successful open is watched (its inode's s_dev,
 * i_ino). Most are not, and their clear bit in watched_bits says so
 * without the lookup.
 */
static __always_inline int is_watched(struct file *file)
{
	struct inode *inode = file_inode_of(file);
	struct watched_key key;
	struct watched_bits *bits;
	__u32 zero = 0;
	__u64 h;

	key.dev = inode_id(inode, &key.ino);
	h = ((key.ino ^ key.dev << 32) * WATCHED_MIX) >> (64 - WATCHED_BITS_SHIFT);
	bits = bpf_map_lookup_elem(&watched_bits, &zero);
	if (bits && !(bits->word[h / 64] & (1ULL << (h % 64))))
		return 0;
	return bpf_map_lookup_elem(&watched_files, &key) != NULL;
}

/*
 * At a read-only open's sys_exit (its stashed header found): the file it
 * opened, from the returned fd, is looked up by identity; not watched, it
 * is counted and nothing else is done. A failed one opened no file:
 * reported when the kernel refused it (EACCES, EPERM: an attempt on a file
 * the caller may not open), else counted. Exclusions apply to what is
 * reported.
 */
static __always_inline int read_open_exit(ES_CTX_PARAM long nr, long ret, __u64 path, __s32 dirfd, __u32 flags,
					  __u32 mode)
{
	struct file *file;

	if (ret >= 0) {
		file = current_fd_file(ret);
		/* closed by another thread before this exit: lost, counted */
		if (!file) {
			stat_inc(EVENT_FILE_OPEN, STAT_UNMATCHED);
			return 0;
		}
		if (!is_watched(file))
			goto unwatched;
	} else if (ret != -EACCES && ret != -EPERM) {
		goto unwatched;
	}
	if (excluded_for(EVENT_FILE_OPEN))
		return 0;
	return read_open_report(ES_CTX nr, ret, path, dirfd, flags, mode);
unwatched:
	stat_inc(EVENT_FILE_OPEN, STAT_UNWATCHED);
	return 0;
}

/*
 * At the sys_exit of an open or openat under the "watched" policy, where
 * OPEN_ARGS_AT_EXIT: its arguments from the registers the call was made
 * with, as the task saved them on entry. Nothing can change them between
 * sys_enter and sys_exit: another thread cannot reach them, a tracer only
 * at a stop, and these calls stop nowhere in between (the ptrace entry stop
 * and seccomp come before sys_enter, the exit stop after sys_exit). So a
 * read-only open stashes nothing at all, and the exit decides it as
 * read_open_exit() does. Returns non-zero for an open with write intent,
 * whose sys_enter stashed it as usual.
 */
static __always_inline int read_open_exit_regs(void *ctx, long nr, long ret)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	__u64 a[4] = { PT_REGS_PARM1_SYSCALL(regs), PT_REGS_PARM2_SYSCALL(regs), PT_REGS_PARM3_SYSCALL(regs),
		       PT_REGS_PARM4_SYSCALL(regs) };
	struct open_args o;

	open_args(nr, a, &o);
	if (write_intent(o.flags))
		return 1;
	/* with FileOpen off a read-only open has nothing to report */
	if (kind_on(EVENT_FILE_OPEN))
		read_open_exit(ES_CTX nr, ret, o.path, o.dirfd, o.flags, o.mode);
	return 0;
}

static __always_inline int file_exit(void *ctx, long nr, __u32 op, long ret)
{
	__u64 id;
	struct file_scratch *s;
	struct file_call *c;
	struct file *file;

	if (op == FOP_OPEN && !cfg_read_opens_all && OPEN_REGS_CALL(nr) && !read_open_exit_regs(ctx, nr, ret))
		return 0;
	id = bpf_get_current_pid_tgid();
	c = stashed_call(id);
	/* nothing stashed: the kind is off, the process excluded, the sensor
	 * started mid-call, or the entry was evicted (counted: the call is lost);
	 * another call's arguments: its exit program did not run */
	if (!c) {
		if (!op_enabled(op) || current_excluded() >= 0)
			return 0;
		/* an open whose file_calls entry was evicted: a watched file
		 * is reported all the same, known by the file it opened */
		if (op == FOP_OPEN && !cfg_read_opens_all && ret >= 0 && kind_on(EVENT_FILE_OPEN)) {
			file = fd_file((struct task_struct *)bpf_get_current_task(), ret);
			if (file && is_watched(file))
				return read_open_report(ES_CTX nr, ret, 0, FILE_AT_FDCWD,
							BPF_CORE_READ(file, f_flags), 0);
		}
		stat_inc(op_event(op), STAT_UNMATCHED);
		return 0;
	}
	if (c->nr != nr)
		return 0;
	if (op == FOP_OPEN && !cfg_read_opens_all && c->read_only) {
		read_open_exit(ES_CTX nr, ret, c->path, c->dirfd, c->flags, c->mode);
		unstash_call(id, c);
		return 0;
	}
	/* the record builders read the call from the scratch: one copy, then
	 * no lookup of the stash in each of them */
	s = scratch();
	if (!s)
		return 0;
	/* a call of one string: its second copy is not read */
	if (op == FOP_RENAME || op == FOP_LINK || op == FOP_SYMLINK) {
		call_copy(&s->call, c, sizeof(s->call));
	} else {
		call_copy(&s->call, c, offsetof(struct file_call, arg[1]));
		s->call.arg[1].len = ARG_UNREAD;
	}
	unstash_call(id, c);
	switch (op) {
	case FOP_OPEN:
		emit_open(ES_CTX ret, 0, 0);
		break;
	case FOP_MKNOD:
		emit_mknod(ES_CTX ret);
		break;
	case FOP_UNLINK:
		emit_unlink(ES_CTX ret);
		break;
	case FOP_MKDIR:
		emit_mkdir(ES_CTX ret);
		break;
	case FOP_RENAME:
		emit_pair(ES_CTX ret, EVENT_FILE_RENAME);
		break;
	case FOP_CHMOD:
		emit_chmod(ES_CTX ret);
		break;
	case FOP_CHOWN:
		emit_chown(ES_CTX ret);
		break;
	case FOP_LINK:
		emit_pair(ES_CTX ret, EVENT_FILE_LINK);
		break;
	case FOP_SYMLINK:
		emit_symlink(ES_CTX ret);
		break;
	}
	return 0;
}

/*
 * A syscall's enter program: nr and op are constants, so each keeps only
 * its own case of normalise() (the arguments' places differ by call).
 */
#define FILE_SYSCALL_ENTER(name, op)                                                \
	SEC("tp/syscalls/sys_enter_" #name)                                         \
	int handle_file_##name##_enter_tp(struct syscall_trace_enter *ctx)          \
	{                                                                           \
		__u64 a[6] = { ctx->args[0], ctx->args[1], ctx->args[2],            \
			       ctx->args[3], ctx->args[4], 0 };                     \
		return file_enter(NR_##name, op, a);                                \
	}

/*
 * The exit programs: one per operation, attached at the sys_exit
 * tracepoint of each of its calls (their records differ only by the
 * syscall number, read from the tracepoint): FILE_SYSCALL's exit program is
 * the operation's, FILE_SYSCALL_ALSO's exit hook runs that program
 * (ES_SHARED_HOOK). Each exit program is a path walk and a record builder,
 * ten thousand instructions for the verifier to walk: one per operation
 * instead of one per call is most of file.bpf.o's load.
 */
#define FILE_SYSCALL(name, op)                                                      \
	FILE_SYSCALL_ENTER(name, op)                                                \
	SEC("tp/syscalls/sys_exit_" #name)                                          \
	int handle_file_##name##_exit_tp(struct syscall_trace_exit *ctx)            \
	{                                                                           \
		return file_exit(ctx, ctx->nr, op, ctx->ret);                       \
	}

#define FILE_SYSCALL_ALSO(name, op, exit_of)                                        \
	FILE_SYSCALL_ENTER(name, op)                                                \
	ES_SHARED_HOOK(file_##name##_exit, tp, handle_file_##exit_of##_exit_tp,     \
		       "tp/syscalls/sys_exit_" #name);

FILE_SYSCALL(openat, FOP_OPEN)
FILE_SYSCALL_ALSO(openat2, FOP_OPEN, openat)
FILE_SYSCALL(mknodat, FOP_MKNOD)
FILE_SYSCALL(unlinkat, FOP_UNLINK)
FILE_SYSCALL(mkdirat, FOP_MKDIR)
FILE_SYSCALL(renameat2, FOP_RENAME)
FILE_SYSCALL_ALSO(renameat, FOP_RENAME, renameat2)
FILE_SYSCALL(fchmodat, FOP_CHMOD)
FILE_SYSCALL_ALSO(fchmod, FOP_CHMOD, fchmodat)
FILE_SYSCALL_ALSO(fchmodat2, FOP_CHMOD, fchmodat)
FILE_SYSCALL(fchownat, FOP_CHOWN)
FILE_SYSCALL_ALSO(fchown, FOP_CHOWN, fchownat)
FILE_SYSCALL(linkat, FOP_LINK)
FILE_SYSCALL(symlinkat, FOP_SYMLINK)

/* the legacy calls that arm64 (asm-generic) does not have */
#if defined(__TARGET_ARCH_x86)
FILE_SYSCALL_ALSO(open, FOP_OPEN, openat)
FILE_SYSCALL_ALSO(creat, FOP_OPEN, openat)
FILE_SYSCALL_ALSO(mknod, FOP_MKNOD, mknodat)
FILE_SYSCALL_ALSO(unlink, FOP_UNLINK, unlinkat)
FILE_SYSCALL_ALSO(rmdir, FOP_UNLINK, unlinkat)
FILE_SYSCALL_ALSO(mkdir, FOP_MKDIR, mkdirat)
FILE_SYSCALL_ALSO(rename, FOP_RENAME, renameat2)
FILE_SYSCALL_ALSO(chmod, FOP_CHMOD, fchmodat)
FILE_SYSCALL_ALSO(chown, FOP_CHOWN, fchownat)
FILE_SYSCALL_ALSO(lchown, FOP_CHOWN, fchownat)
FILE_SYSCALL_ALSO(link, FOP_LINK, linkat)
FILE_SYSCALL_ALSO(symlink, FOP_SYMLINK, symlinkat)
#endif

/*
 * The open seen inside the kernel (the fentry variant of the open hooks,
 * where the kernel has BPF trampolines): one fexit program on
 * do_filp_open(), which every open by path the kernel makes for a process
 * goes through: open, creat, openat, openat2, and io_uring's
 * IORING_OP_OPENAT/OPENAT2, which pass by the syscall tracepoints unseen
 * (from 5.12 io_uring's workers are threads of the submitting process; on
 * 5.10, kernel threads marked PF_IO_WORKER). No stash and no second
 * program: the name is the kernel's own copy (struct filename, taken
 * before the lookup: what the kernel used, beyond another thread's reach),
 * flags and mode are the kernel's (open_flags), the result is the file or
 * ERR_PTR(-errno). The policy is the pair's: write intent reported,
 * read-only reported when watched or refused, else counted.
 *
 * Left out: exec and uselib, which open with __FMODE_EXEC (FMODE_EXEC,
 * 0x20, in every kernel of the tier) and have their own event; kernel
 * threads' opens. Kept: the kernel's opens on a process's behalf through
 * filp_open() (a core dump's file, acct(), swapon()): each opens a file
 * the process named or has written for it, in its context, and the
 * syscall tracepoints never saw them.
 *
 * The variant mechanism chooses a variant per hook, and the pair is eight
 * hooks (four on arm64): this program is the fentry variant of
 * file_openat_exit, and every other open hook's fentry variant is this
 * program too, covered by its one attachment (ES_SHARED_HOOK). The loader
 * runs it for all of the open's hooks or for none (a verifier refusal, or
 * a full trampoline on do_filp_open, gives it up for all), and the
 * tracepoint pairs where the kernel refuses trampolines or the
 * configuration leaves fentry out: never both, no open reported twice or
 * lost.
 */
#define OPEN_FLAG_EXEC 0x20 /* __FMODE_EXEC */
#define O_NONBLOCK 04000
#define O_CLOEXEC 02000000
#if defined(__TARGET_ARCH_arm64)
#define O_LARGEFILE 0400000
#else
#define O_LARGEFILE 0100000
#endif
/* both architectures' kernel stacks without KASAN (Debian's kernels): the
 * pt_regs at their top, where bpf_task_pt_regs() (5.15) is missing */
#define ES_THREAD_SIZE 16384

/* io_uring_enter: 426 on both architectures (x86-64 and asm-generic) */
#define NR_io_uring_enter 426

/*
 * The syscall an open was made in: open, openat, openat2, creat for
 * theirs; io_uring_enter for every io_uring open, made inline in that call
 * or later by one of the ring's io-wq (or SQPOLL) threads, which are in no
 * syscall; acct, swapon, ... for the kernel's opens on their behalf; -1 (as
 * a u32) for a core dump after a fault.
 */
static __always_inline __u32 current_syscall_nr(struct task_struct *task, __u32 pflags)
{
	struct pt_regs *regs;

	if (pflags & PF_IO_WORKER)
		return NR_io_uring_enter;
	/* a typed pointer: its field loaded directly */
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs)) {
		regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
#if defined(__TARGET_ARCH_arm64)
		return regs->syscallno;
#else
		return regs->orig_ax;
#endif
	}
	regs = (struct pt_regs *)((__u64)BPF_CORE_READ(task, stack) + ES_THREAD_SIZE) - 1;
#if defined(__TARGET_ARCH_arm64)
	return BPF_CORE_READ(regs, syscallno);
#else
	return BPF_CORE_READ(regs, orig_ax);
#endif
}

/*
 * The fd the open syscall reserved for the file (get_unused_fd_flags(),
 * before do_filp_open(), released after it when the open failed; the
 * lowest free one, after which files->next_fd points): next_fd - 1, when
 * that slot is reserved and holds no file yet; -1 when it is not: an
 * io_uring open into a fixed-file slot and the kernel's own opens take no
 * fd. Another thread of the process reserving one at the same moment can
 * make it that thread's fd. *cloexec: the fd's close-on-exec bit, which
 * the reservation set from O_CLOEXEC: the kernel drops that flag from the
 * open's flags (build_open_flags()).
 */
static __always_inline long reserved_fd(struct task_struct *task, __u32 *cloexec)
{
	unsigned long word = 0, *open_fds, *close_on_exec;
	struct files_struct *files;
	struct file **fds, *f = NULL;
	struct fdtable *fdt;
	__u32 fd, max_fds;

	*cloexec = 0;
	/* loaded directly where the kernel has bpf_get_current_task_btf()
	 * (as current_fd_file()), else one helper call each */
	if (ES_TASK_BTF) {
		files = bpf_get_current_task_btf()->files;
		fd = files->next_fd - 1;
		fdt = files->fdt;
		max_fds = fdt->max_fds;
		fds = fdt->fd;
		open_fds = fdt->open_fds;
		close_on_exec = fdt->close_on_exec;
	} else {
		files = BPF_CORE_READ(task, files);
		fd = BPF_CORE_READ(files, next_fd) - 1;
		fdt = BPF_CORE_READ(files, fdt);
		max_fds = BPF_CORE_READ(fdt, max_fds);
		fds = BPF_CORE_READ(fdt, fd);
		open_fds = BPF_CORE_READ(fdt, open_fds);
		close_on_exec = BPF_CORE_READ(fdt, close_on_exec);
	}
	if (!fdt || fd >= max_fds)
		return -1;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (f)
		return -1;
	bpf_probe_read_kernel(&word, sizeof(word), &open_fds[fd / 64]);
	if (!((word >> (fd % 64)) & 1))
		return -1;
	bpf_probe_read_kernel(&word, sizeof(word), &close_on_exec[fd / 64]);
	*cloexec = (word >> (fd % 64)) & 1;
	return fd;
}

static __always_inline int open_fexit(void *ctx, int dfd, struct filename *name, const struct open_flags *op)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	/* op and name are the program's typed arguments: loaded directly */
	__u32 pflags, flags = op->open_flag;
	struct file_scratch *s;
	struct file_call *c;
	struct file *file;
	long ret = 0, fd, n;
	__u64 kname, kfile = 0;
	__u32 cloexec;

	pflags = ES_TASK_BTF ? bpf_get_current_task_btf()->flags : BPF_CORE_READ(task, flags);
	if ((flags & OPEN_FLAG_EXEC) || ((pflags & PF_KTHREAD) && !(pflags & PF_IO_WORKER)))
		return 0;
	/* the result as a number, read from its slot in the context: the
	 * verifier types the argument as a file pointer, which may not become
	 * an errno nor be passed to a global function */
	bpf_probe_read_kernel(&kfile, sizeof(kfile), &((__u64 *)ctx)[3]);
	file = (struct file *)kfile;
	if (kfile >= (__u64)-4095) {
		ret = (long)kfile;
		kfile = 0;
		file = NULL;
		/* io_uring's inline try (O_NONBLOCK, cached lookup only),
		 * made again by a worker: that one is reported */
		if (ret == -EAGAIN && (flags & O_NONBLOCK))
			return 0;
	}
	if (!op_enabled(FOP_OPEN))
		return 0;
	if (!cfg_read_opens_all && !write_intent(flags)) {
		if (!kind_on(EVENT_FILE_OPEN))
			return 0;
		if (file ? !is_watched(file) : ret != -EACCES && ret != -EPERM) {
			stat_inc(EVENT_FILE_OPEN, STAT_UNWATCHED);
			return 0;
		}
	}
	if (excluded_for(EVENT_FILE_OPEN))
		return 0;
	s = scratch();
	if (!s)
		return 0;
	kname = (__u64)name->name;
	/* at most PATH_MAX with its NUL (getname): never cut */
	n = bpf_probe_read_kernel_str(s->check, sizeof(s->check), (const void *)kname);
	if (n <= 0) {
		s->check[0] = 0;
		n = 1;
	}
	s->check_len = n - 1;
	s->check_cut = 0;
	c = &s->call;
	__builtin_memset(c, 0, offsetof(struct file_call, arg));
	c->nr = current_syscall_nr(task, pflags);
	c->op = FOP_OPEN;
	c->path = kname;
	c->dirfd = dfd;
	c->new_dirfd = FILE_AT_FDCWD;
	/* added by the kernel to every open of a 64-bit caller */
	c->flags = flags & ~O_LARGEFILE;
	/* the kernel's adds the file type (S_IFREG) */
	c->mode = op->mode & 07777;
	c->arg[0].len = ARG_UNREAD;
	c->arg[1].len = ARG_UNREAD;
	fd = reserved_fd(task, &cloexec);
	if (cloexec)
		c->flags |= O_CLOEXEC;
	/* no fd: success all the same */
	if (file)
		ret = fd < 0 ? 0 : fd;
	return emit_open(ES_CTX ret, kfile, 1);
}

/* do_filp_open(dfd, pathname, op) -> struct file * */
SEC("fexit/do_filp_open")
int BPF_PROG(handle_file_openat_exit_fentry, int dfd, struct filename *name, const struct open_flags *op,
	     struct file *file)
{
	return open_fexit(ctx, dfd, name, op);
}

/* the other open hooks' fentry variants: this program (see above) */
#define OPEN_FENTRY_PEER(hook) ES_SHARED_HOOK(file_##hook, fentry, handle_file_openat_exit_fentry, "");

OPEN_FENTRY_PEER(openat_enter)
OPEN_FENTRY_PEER(openat2_enter)
OPEN_FENTRY_PEER(openat2_exit)
#if defined(__TARGET_ARCH_x86)
OPEN_FENTRY_PEER(open_enter)
OPEN_FENTRY_PEER(open_exit)
OPEN_FENTRY_PEER(creat_enter)
OPEN_FENTRY_PEER(creat_exit)
#endif
