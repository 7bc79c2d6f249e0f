/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Reading process context and paths out of kernel structures, with CO-RE. */
#ifndef EBPFSENSOR_TASK_BPF_H
#define EBPFSENSOR_TASK_BPF_H

#include "maps.bpf.h"
#include "filter.bpf.h"

#define NAME_MASK 255		 /* NAME_MAX */

/* the kernel's task flags and errnos the programs compare with: vmlinux.h
 * has the types, not the macros */
#define PF_IO_WORKER 0x00000010
#define PF_KTHREAD 0x00200000
#define EAGAIN 11
#define PATH_MASK (PATH_LEN - 1) /* PATH_LEN is a power of two */

/*
 * Whether the path walk loads the kernel's dentries and mounts directly:
 * bpf_rdonly_cast() (6.2; libbpf's bpf_core_cast()) gives a number the
 * kernel type the verifier needs to make each load through it a fault-safe
 * load, where BPF_CORE_READ() costs a bpf_probe_read_kernel() call each.
 * Chosen by a CO-RE constant, the verifier's own list of the kfuncs it
 * treats specially, which names it exactly where it exists (bpf_ksym_exists()
 * would name the kfunc in an ld_imm64, which 6.2 and 6.3 refuse): on an
 * older kernel only the helper branch is left, the unresolved call in the
 * dead one poisoned by libbpf. The perf builds (5.4, 4.19) keep the helper
 * walk alone.
 */
#ifdef ES_PERFBUF
#define PATH_DIRECT 0
#else
#define PATH_DIRECT (cfg_kernel_btf && bpf_core_enum_value_exists(enum special_kfunc_type, KF_bpf_rdonly_cast))
#endif

/* a field (a chain, as BPF_CORE_READ() takes) of the kernel object of the
 * given type at address p, a number: loaded directly where PATH_DIRECT */
#define KREAD(type, p, ...)                                                   \
	(PATH_DIRECT ? ___arrow(bpf_core_cast((void *)(p), type), __VA_ARGS__) \
		     : BPF_CORE_READ((type *)(p), __VA_ARGS__))

/*
 * A dentry's short name, stored in the dentry itself: d_iname until 6.13,
 * then the union d_shortname (the array and the words of one name).
 */
union shortname_store___es {
	unsigned char string[40];
	unsigned long words[5];
};

struct dentry___v614 {
	union shortname_store___es d_shortname;
};

#define DENTRY_INAME_OFF                                                       \
	(bpf_core_field_exists(struct dentry___v614, d_shortname)              \
		 ? bpf_core_field_offset(struct dentry___v614, d_shortname)    \
		 : bpf_core_field_offset(struct dentry, d_iname))
#define DENTRY_INAME_SIZE                                                      \
	(bpf_core_field_exists(struct dentry___v614, d_shortname)              \
		 ? bpf_core_field_size(struct dentry___v614, d_shortname)      \
		 : bpf_core_field_size(struct dentry, d_iname))

/* the words of the array path_copy() loads: 4 or 5 (what a kernel has
 * beyond them, if any, is read with the helper) */
#define DENTRY_INAME_WORDS (DENTRY_INAME_SIZE >= 40 ? 5 : DENTRY_INAME_SIZE >= 32 ? 4 : 0)

/* a slot's length with this bit: the name is the dentry's short name, which
 * path_copy() loads directly (PATH_DIRECT) instead of a helper call */
#define NAME_INLINE (1U << 16)

/* memfd_create names its file "memfd:<name>": a short name is loaded from
 * the dentry itself where PATH_DIRECT, a long one read with the helper */
static __always_inline int is_memfd(struct dentry *dentry)
{
	char name[6] = {};

	if (PATH_DIRECT && (__u64)KREAD(struct dentry, dentry, d_name.name) == (__u64)dentry + DENTRY_INAME_OFF) {
		__u64 w = *(const __u64 *)((const char *)bpf_core_cast((void *)dentry, struct dentry) +
					   DENTRY_INAME_OFF);

		/* "memfd:" as a little-endian number, the first six bytes */
		return (w & 0xffffffffffffULL) == 0x3a64666d656dULL;
	}
	bpf_probe_read_kernel(name, sizeof(name), KREAD(struct dentry, dentry, d_name.name));
	return name[0] == 'm' && name[1] == 'e' && name[2] == 'm' && name[3] == 'f' && name[4] == 'd' &&
	       name[5] == ':';
}

/*
 * A path is resolved in two passes so the verifier sees two simple loops:
 * the first walks dentries and mounts leafwards-up, noting each name; the
 * second copies the names root-first. A zero length marks a mount crossing.
 */
struct path_parts {
	const unsigned char *name[MAX_PATH_DEPTH];
	__u32 len[MAX_PATH_DEPTH];
	__u32 used; /* slots the walk filled; kept here, not in a register, so
		     * the verifier's states do not differ by depth */
	__u32 done; /* the walk reached the root (then: nothing was cut) */
	__u32 pos;  /* bytes the copy wrote */
	__u32 _pad;
	/* where the walk stands between two path_walk() calls */
	__u64 dentry, mnt, mnt_parent, mnt_root;
	__u64 number; /* map_number()'s */
};

/*
 * A kernel pointer as a number, through slot, a word of a map value: a
 * direct load's pointer is typed to the verifier, which takes no variable
 * index into it, which the global functions (the path walk's, put_path())
 * refuse as an argument, and a register that holds a number on one path
 * and a typed pointer on another keeps the verifier's states from matching;
 * stored in a map value and loaded back it is a number.
 */
static __always_inline __u64 map_number(__u64 *slot, const void *p)
{
	*(volatile __u64 *)slot = (__u64)p;
	return *(volatile __u64 *)slot;
}

/* KREAD() of a pointer field in the walk, as a number (map_number()) */
#define WALK_READ(parts, type, p, ...)                                                      \
	({                                                                                  \
		__u64 _v = (__u64)KREAD(type, p, __VA_ARGS__);                              \
		if (PATH_DIRECT)                                                            \
			_v = map_number(&(parts)->number, (const void *)_v);                \
		_v;                                                                         \
	})

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_parts);
} path_parts SEC(".maps");

static __always_inline void fill_task_ctx(struct task_ctx *c, struct task_struct *task)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();

	c->pid = id >> 32;
	c->tid = (__u32)id;
	c->ppid = BPF_CORE_READ(task, real_parent, tgid);
	c->uid = (__u32)ugid;
	c->gid = ugid >> 32;
	c->cgroup_id = current_cgroup_id();
	/* the process's start, not the thread's: pid + start time names a process */
	c->start_time_ns = task_boot_start(task);
	bpf_get_current_comm(c->comm, sizeof(c->comm));
}

/*
 * fill_task_ctx() of the current task, its fields loaded directly through
 * task, a BTF pointer to it (trusted, or an untrusted cast): the ring
 * builds only, for 5.8+, which has start_boottime (5.5).
 */
static __always_inline void task_ctx_direct(struct task_ctx *c, struct task_struct *task)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();

	c->pid = id >> 32;
	c->tid = (__u32)id;
	c->ppid = task->real_parent->tgid;
	c->uid = (__u32)ugid;
	c->gid = ugid >> 32;
	c->cgroup_id = current_cgroup_id();
	c->start_time_ns = task->group_leader->start_boottime;
	bpf_get_current_comm(c->comm, sizeof(c->comm));
}

/*
 * fill_task_ctx() of the current task, the cheap way where the kernel has
 * bpf_get_current_task_btf() (5.11): the parent's and the leader's fields
 * are then loaded directly (fault-safe loads, not a helper call each); a
 * kernel without it, or a perf build, keeps only the other branch
 * (ES_TASK_BTF, compat.bpf.h).
 */
static __always_inline void fill_current_task_ctx(struct task_ctx *c)
{
	struct task_struct *task;

	if (!ES_TASK_BTF) {
		fill_task_ctx(c, (struct task_struct *)bpf_get_current_task());
		return;
	}
	task = bpf_get_current_task_btf();
	/* the same direct loads through an untrusted cast: through the trusted
	 * pointer each load makes the verifier search the kernel's BTF by name
	 * (whether the pointer it yields is trusted), a third of the file
	 * object's verification time */
	if (PATH_DIRECT)
		task = bpf_core_cast(task, struct task_struct);
	task_ctx_direct(c, task);
}

/* one resolved path: filled by path_resolve(), copied into a record */
struct path_buf {
	char buf[PATH_LEN + NAME_MASK + 1];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct path_buf);
} path_buf SEC(".maps");

#define PATH_TRUNCATED (1U << 31)

/* slots per path_walk() and path_copy() call */
#define PATH_STEP 8

/* a slot's index, bounded where it is used: 4.19's verifier keeps no
 * bounds of a scalar spilled to the stack, so the mask goes on the
 * register each access takes (ES_MASK) */
#ifdef ES_V419
#define SLOT(n) ES_MASK(n, MAX_PATH_DEPTH - 1)
#else
#define SLOT(n) ((n) & (MAX_PATH_DEPTH - 1))
#endif

/*
 * PATH_STEP slots of the walk, from slot first: leafwards-up, one name per
 * dentry, two reads per component, the mount's root only when crossing.
 * The walk's position is kept in parts between calls. Every slot is written
 * (the verifier needs no state per depth). A global function, like
 * path_copy(): the verifier walks its PATH_STEP slots once per program, and
 * path_resolve()'s loop costs it only a call per PATH_STEP slots, where all
 * MAX_PATH_DEPTH slots inline would each be walked in every program.
 */
ES_FUNC int path_walk(__u32 first)
{
	__u32 zero = 0, done, k;
	struct path_parts *parts = bpf_map_lookup_elem(&path_parts, &zero);
	struct dentry *dentry, *mnt_root;
	struct mount *mnt, *mnt_parent;

	if (!parts)
		return 0;
	dentry = (struct dentry *)parts->dentry;
	mnt = (struct mount *)parts->mnt;
	mnt_parent = (struct mount *)parts->mnt_parent;
	mnt_root = (struct dentry *)parts->mnt_root;
	done = parts->done;
	ES_UNROLL
	for (k = 0; k < PATH_STEP; k++) {
		struct dentry *parent;
		struct qstr name;

		parts->len[SLOT(first + k)] = 0;
		if (done)
			continue;
		parent = (struct dentry *)WALK_READ(parts, struct dentry, dentry, d_parent);
		if (dentry == mnt_root || dentry == parent) {
			/* a pseudo file (memfd, anonymous inode) or a detached tree:
			 * its own name is all there is */
			if (dentry != mnt_root) {
				parts->len[SLOT(first + k)] = KREAD(struct dentry, dentry, d_name.len);
				parts->name[SLOT(first + k)] = KREAD(struct dentry, dentry, d_name.name);
				done = 1;
				parts->used = SLOT(first + k) + 1;
				continue;
			}
			/* the root of the task's mount namespace */
			if (mnt == mnt_parent) {
				done = 1;
				parts->used = SLOT(first + k);
				continue;
			}
			/* cross to the mount point in the parent mount */
			dentry = (struct dentry *)WALK_READ(parts, struct mount, mnt, mnt_mountpoint);
			mnt = mnt_parent;
			mnt_parent = (struct mount *)WALK_READ(parts, struct mount, mnt, mnt_parent);
			mnt_root = (struct dentry *)WALK_READ(parts, struct mount, mnt, mnt.mnt_root);
			continue;
		}
		if (PATH_DIRECT) {
			name.len = KREAD(struct dentry, dentry, d_name.len);
			name.name = KREAD(struct dentry, dentry, d_name.name);
			/* a short name is its dentry's: path_copy() loads it */
			if ((__u64)name.name == (__u64)dentry + DENTRY_INAME_OFF && name.len < DENTRY_INAME_WORDS * 8)
				name.len |= NAME_INLINE;
		} else {
			bpf_core_read(&name, sizeof(name), &dentry->d_name);
		}
		parts->len[SLOT(first + k)] = name.len;
		parts->name[SLOT(first + k)] = name.name;
		dentry = parent;
	}
	parts->dentry = (__u64)dentry;
	parts->mnt = (__u64)mnt;
	parts->mnt_parent = (__u64)mnt_parent;
	parts->mnt_root = (__u64)mnt_root;
	parts->done = done;
	return 0;
}

/*
 * PATH_STEP of the names the walk noted into path_buf, root-first, from the
 * first-th: "/name" each, nothing for a mount crossing. A path that does not
 * fit in PATH_LEN - 1 bytes stops here, marked not done (cut).
 */
ES_FUNC int path_copy(__u32 first)
{
	__u32 zero = 0, used, pos, i, j, k;
	struct path_parts *parts = bpf_map_lookup_elem(&path_parts, &zero);
	struct path_buf *out = bpf_map_lookup_elem(&path_buf, &zero);

	if (!parts || !out)
		return 0;
	used = parts->used;
	pos = parts->pos;
	ES_UNROLL
	for (k = 0; k < PATH_STEP; k++) {
		__u32 len, size, at, raw;

		j = first + k;
		if (j >= used)
			break;
		i = used - 1 - j;
		raw = parts->len[SLOT(i)];
		len = raw & NAME_MASK;
		size = len + ((len + NAME_MASK) >> 8);
		if (pos + size > PATH_LEN - 1) {
			parts->done = 0;
			parts->used = 0;
			break;
		}
		/* keep the compiler from dropping the masks the verifier needs */
		asm volatile("" : "+r"(pos));
		out->buf[pos & PATH_MASK] = '/';
		at = (pos + 1) & PATH_MASK;
		if (PATH_DIRECT && (raw & NAME_INLINE)) {
			/* the dentry's whole short-name array, a load and a store a
			 * word (path_buf has room past PATH_LEN for the words beyond
			 * the name; what follows overwrites them, only pos counts) */
			const __u64 *w = (const __u64 *)((const char *)bpf_core_cast(
								  (void *)((__u64)parts->name[SLOT(i)] - DENTRY_INAME_OFF),
								  struct dentry) +
							  DENTRY_INAME_OFF);
			__u64 *d = (__u64 *)&out->buf[at];

			d[0] = w[0];
			d[1] = w[1];
			d[2] = w[2];
			d[3] = w[3];
			if (DENTRY_INAME_WORDS == 5)
				d[4] = w[4];
		} else {
			bpf_probe_read_kernel(&out->buf[at], len, parts->name[SLOT(i)]);
		}
		pos += size;
	}
	parts->pos = pos;
	return 0;
}

/*
 * The walk of path_resolve_at() from parts->dentry in parts->mnt (a struct
 * vfsmount there, on entry). Read back as numbers: stored from direct loads
 * they are typed pointers to the verifier, which a global function's
 * arguments refuse; a map value keeps no type.
 */
static __always_inline int path_run(struct path_parts *parts, struct path_buf *out)
{
	__u64 dentry = *(volatile __u64 *)&parts->dentry;
	__u64 vfsmnt = *(volatile __u64 *)&parts->mnt;
	struct mount *mnt = container_of((struct vfsmount *)vfsmnt, struct mount, mnt);
	__u32 pos, i;

	if (!dentry || !vfsmnt)
		return 0;
	parts->used = MAX_PATH_DEPTH;
	parts->done = 0;
	parts->pos = 0;
	parts->mnt = (__u64)mnt;
	parts->mnt_parent = (__u64)KREAD(struct mount, mnt, mnt_parent);
	parts->mnt_root = (__u64)KREAD(struct vfsmount, vfsmnt, mnt_root);
	/* leaving a loop early ends a path through it: the verifier's work
	 * stays linear in the depth */
	ES_UNROLL
	for (i = 0; i < MAX_PATH_DEPTH; i += PATH_STEP) {
		if (parts->done)
			break;
		path_walk(i);
	}
	/* only the slots the walk used: a helper call per unused slot cost
	 * more than the rest of the walk */
	ES_UNROLL
	for (i = 0; i < MAX_PATH_DEPTH; i += PATH_STEP) {
		if (i >= parts->used)
			break;
		path_copy(i);
	}
	pos = parts->pos;
	if (pos == 0) {
		out->buf[0] = '/';
		pos = 1;
	}
	/* not done: deeper than MAX_PATH_DEPTH or too long, leading part missing */
	return pos | (parts->done ? 0 : PATH_TRUNCATED);
}

/*
 * Resolve a dentry in a mount (the parts of a struct path) from the
 * kernel's own dentry and mount chain, up to the root of the task's mount
 * namespace, into the per-CPU path_buf, in two passes: path_walk() notes
 * the names leafwards-up, path_copy() writes them root-first. Returns the
 * length (no terminating NUL), with PATH_TRUNCATED set when the path is
 * deeper than MAX_PATH_DEPTH or longer than PATH_LEN - 1.
 *
 * A global function: the verifier checks it once per program, not at every
 * call site. (Unused in some perf-build objects, where it is static.)
 */
ES_FUNC __attribute__((unused)) int path_resolve_at(__u64 dentry_ptr, __u64 vfsmnt_ptr)
{
	__u32 zero = 0;
	struct path_parts *parts = bpf_map_lookup_elem(&path_parts, &zero);
	struct path_buf *out = bpf_map_lookup_elem(&path_buf, &zero);

	if (!parts || !out)
		return 0;
	parts->dentry = dentry_ptr;
	parts->mnt = vfsmnt_ptr;
	return path_run(parts, out);
}

/* path_resolve_at() of a struct path */
ES_FUNC int path_resolve(__u64 path_ptr)
{
	__u32 zero = 0;
	struct path_parts *parts = bpf_map_lookup_elem(&path_parts, &zero);
	struct path_buf *out = bpf_map_lookup_elem(&path_buf, &zero);

	if (!parts || !out || !path_ptr)
		return 0;
	parts->dentry = (__u64)KREAD(struct path, path_ptr, dentry);
	parts->mnt = (__u64)KREAD(struct path, path_ptr, mnt);
	return path_run(parts, out);
}

/*
 * Resolve a path into dst, which must have room for PATH_LEN bytes.
 * Returns the length written.
 */
static __always_inline __u32 append_path(char *dst, const struct path *path, __u8 *truncated)
{
	__u32 zero = 0, ret, len;
	struct path_buf *out;

	ret = path_resolve((__u64)path);
	out = bpf_map_lookup_elem(&path_buf, &zero);
	*truncated = (ret & PATH_TRUNCATED) != 0;
	len = ret & PATH_MASK;
	if (!out || !len)
		return 0;
	bpf_probe_read_kernel(dst, len, out->buf);
	return len;
}

#endif /* EBPFSENSOR_TASK_BPF_H */
