/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Exclusions: the maps user space fills, the per-event check, and the
 * bookkeeping at exec, fork and exit that keeps excluded_tgids current.
 * An excluded process costs one array and one hash lookup per hook. Path
 * prefix rules cost a file record one LPM trie lookup, and nothing while
 * there are none (excl_active says so).
 */
#ifndef EBPFSENSOR_FILTER_BPF_H
#define EBPFSENSOR_FILTER_BPF_H

#include "maps.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} excl_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct excl_value);
} excluded_tgids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_RULES);
	__type(key, struct exe_key);
	__type(value, struct excl_value);
} excl_exe SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_RULES);
	__type(key, struct comm_key);
	__type(value, struct excl_value);
} excl_comm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_RULES);
	__type(key, __u64);
	__type(value, struct excl_value);
} excl_cgroup SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_RULES);
	__type(key, __u32);
	__type(value, struct excl_value);
} excl_uid SEC(".maps");

/* path prefix rules (see struct excl_path_key); the longest prefix wins */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required of an LPM trie */
	__type(key, struct excl_path_key);
	__type(value, struct excl_value);
} excl_path SEC(".maps");

/* the key of a path lookup, built per CPU: 260 bytes, and written at a
 * variable offset, which 5.10's verifier refuses on the stack */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct excl_path_key);
} excl_path_lookup SEC(".maps");

/* hits per rule and event type: index rule * EVENT_TYPE_MAX + type */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_RULES * EVENT_TYPE_MAX);
	__type(key, __u32);
	__type(value, __u64);
} excl_hits SEC(".maps");

static __always_inline __u32 excl_active_mask(void)
{
	__u32 zero = 0, *mask = bpf_map_lookup_elem(&excl_active, &zero);

	return mask ? *mask : 0;
}

/* the rule excluding the current task, or -1 */
static __always_inline int current_excluded(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct excl_value *v = bpf_map_lookup_elem(&excluded_tgids, &tgid);
	__u32 mask;

	if (v)
		return v->rule;
	mask = excl_active_mask();
	if (mask & EXCL_ACTIVE_CGROUP) {
		__u64 cgroup = current_cgroup_id();

		v = bpf_map_lookup_elem(&excl_cgroup, &cgroup);
		if (v)
			return v->rule;
	}
	if (mask & EXCL_ACTIVE_UID) {
		__u32 uid = (__u32)bpf_get_current_uid_gid();

		v = bpf_map_lookup_elem(&excl_uid, &uid);
		if (v)
			return v->rule;
	}
	return -1;
}

/* a record of this type suppressed by this rule: count the hit for the
 * rule and the type, and the record as filtered */
static __always_inline void excl_hit(int rule, __u32 type)
{
	__u32 idx = ((__u32)rule % MAX_RULES) * EVENT_TYPE_MAX + (type % EVENT_TYPE_MAX);
	__u64 *hits = bpf_map_lookup_elem(&excl_hits, &idx);

	if (hits)
		*hits += 1;
	stat_inc(type, STAT_FILTERED);
}

/* True when the current process is excluded, the hit counted. */
static __always_inline int excluded_for(__u32 type)
{
	int rule = current_excluded();

	if (rule < 0)
		return 0;
	excl_hit(rule, type);
	return 1;
}

/*
 * The path prefix rule covering an absolute path of len bytes, or -1. Only
 * the first EXCL_PATH_LEN bytes are looked at: no prefix is longer. Rules
 * hold a trailing '/' and the path is looked up with one appended, so the
 * rule "/var/log/" covers "/var/log" and "/var/log/x", not "/var/logs".
 */
static __always_inline int path_prefix_rule(const void *path, __u32 len)
{
	__u32 zero = 0, n = len;
	struct excl_path_key *k = bpf_map_lookup_elem(&excl_path_lookup, &zero);
	struct excl_value *v;

	if (!k || !n)
		return -1;
	if (n > EXCL_PATH_LEN)
		n = EXCL_PATH_LEN;
	bpf_probe_read_kernel(k->path, n, path);
	if (n < EXCL_PATH_LEN && k->path[(n - 1) & (EXCL_PATH_LEN - 1)] != '/') {
		k->path[n & (EXCL_PATH_LEN - 1)] = '/';
		n++;
	}
	k->prefixlen = n * 8;
	v = bpf_map_lookup_elem(&excl_path, k);
	return v ? (int)v->rule : -1;
}

/* True when a record of this type must not be produced: the kind is off,
 * or the current process is excluded. */
static __always_inline int skip_event(__u32 type)
{
	return !kind_on(type) || excluded_for(type);
}

/*
 * At sys_exit, nothing stashed for the call: unless its kind is off or the
 * process excluded, the call was in flight when the sensor started, or its
 * stash entry was evicted; its event is lost, and counted, never silently.
 */
static __always_inline void stash_missing(__u32 type)
{
	if (kind_on(type) && current_excluded() < 0)
		stat_inc(type, STAT_UNMATCHED);
}

/* at exec: enter or leave excluded_tgids by the new image's identity and name */
static __always_inline void exclusion_exec(struct task_struct *task)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct excl_value *old = bpf_map_lookup_elem(&excluded_tgids, &tgid);
	struct excl_value *rule = 0;
	struct exe_key exe = {};
	struct comm_key comm = {};
	struct inode *inode;

	if (old && (old->flags & EXCL_STICKY))
		return;
	if (excl_active_mask() & EXCL_ACTIVE_EXEC) {
		inode = BPF_CORE_READ(task, mm, exe_file, f_inode);
		exe.ino = BPF_CORE_READ(inode, i_ino);
		exe.dev = BPF_CORE_READ(inode, i_sb, s_dev);
		rule = bpf_map_lookup_elem(&excl_exe, &exe);
		if (!rule) {
			bpf_get_current_comm(comm.comm, sizeof(comm.comm));
			rule = bpf_map_lookup_elem(&excl_comm, &comm);
		}
	}
	if (rule) {
		struct excl_value v = *rule;

		/* a rule with descendants keeps them however they exec */
		if (v.flags & EXCL_DESCENDANTS)
			v.flags |= EXCL_STICKY;
		bpf_map_update_elem(&excluded_tgids, &tgid, &v, BPF_ANY);
	} else if (old) {
		bpf_map_delete_elem(&excluded_tgids, &tgid);
	}
}

/* at fork: a child of an excluded process runs the same image, so it is
 * excluded too until its own exec; with descendants, for good */
static __always_inline void exclusion_fork(__u32 parent_tgid, __u32 child_tgid)
{
	struct excl_value *v = bpf_map_lookup_elem(&excluded_tgids, &parent_tgid);
	struct excl_value child;

	/* a new process of a parent that is not excluded is not either: an
	 * entry under its pid is a stale one (a process that exited before
	 * user space entered it, or a thread id the classic tracepoint could
	 * not tell from a process) and must not pass to this one */
	if (!v) {
		bpf_map_delete_elem(&excluded_tgids, &child_tgid);
		return;
	}
	child = *v;
	/* a pid rule without descendants names one process only */
	if ((child.flags & EXCL_STICKY) && !(child.flags & EXCL_DESCENDANTS))
		return;
	bpf_map_update_elem(&excluded_tgids, &child_tgid, &child, BPF_ANY);
}

/* at a process's exit: its entry goes; at a thread's, an entry under the
 * thread's id (the classic fork tracepoint enters threads as processes) */
static __always_inline void exclusion_exit(int is_thread)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 key = is_thread ? (__u32)id : (__u32)(id >> 32);

	if (is_thread && key == (__u32)(id >> 32))
		return;
	bpf_map_delete_elem(&excluded_tgids, &key);
}

#endif /* EBPFSENSOR_FILTER_BPF_H */
