/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What differs between the two builds of each object (see maps.bpf.h,
 * "Two transports, one source") and between kernel versions, without a
 * map: headers that must not create the sensor's maps (iter.bpf.c) include
 * this alone. Only BPF code includes this.
 */
#ifndef EBPFSENSOR_COMPAT_BPF_H
#define EBPFSENSOR_COMPAT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* task_struct before 5.5 named its boot-time start real_start_time */
struct task_struct___v54 {
	u64 real_start_time;
} __attribute__((preserve_access_index));

/* when the task's thread group started, CLOCK_BOOTTIME ns: with the pid it
 * names one process */
static __always_inline __u64 task_boot_start(struct task_struct *task)
{
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);

	if (bpf_core_field_exists(leader->start_boottime))
		return BPF_CORE_READ(leader, start_boottime);
	return BPF_CORE_READ((struct task_struct___v54 *)leader, real_start_time);
}

/*
 * The v419 build (-DES_V419, with ES_PERFBUF) is for verifiers before 5.3,
 * which refuse any back-edge, have no global data (5.2) and take 4096
 * instructions a program: loops marked ES_UNROLL are unrolled there (and
 * only there: elsewhere a loop costs fewer instructions than its copies),
 * and a load-time setting (ES_CFG) is a member of the one-entry settings
 * map (maps.bpf.h) that the loader fills between load and attach, where
 * the other builds read a const volatile global the loader writes into
 * .rodata before load.
 */
#ifdef ES_V419
#ifndef ES_PERFBUF
#error "the v419 build is a perf-buffer build: define ES_PERFBUF too"
#endif
#define ES_UNROLL _Pragma("unroll")
#define ES_CFG(name)                                                             \
	({                                                                       \
		__u32 _zero = 0;                                                 \
		struct es_settings *_s = bpf_map_lookup_elem(&settings, &_zero); \
		_s ? _s->name : 0;                                               \
	})
#else
#define ES_UNROLL
#define ES_CFG(name) (name)
#endif

/* before 5.5 a cgroup's id packed the kernfs generation above its inode
 * number; user space knows the cgroup by the inode number (events and the
 * exclusion rules alike) */
union kernfs_node_id___v54 {
	struct {
		u32 ino;
		u32 generation;
	};
	u64 id;
};

static __always_inline __u64 current_cgroup_id(void)
{
	__u64 id = bpf_get_current_cgroup_id();

	if (bpf_core_type_exists(union kernfs_node_id___v54))
		return (__u32)id;
	return id;
}

#ifdef ES_PERFBUF
#define ES_FUNC static __noinline
#define ES_CTX_PARAM void *ctx,
#define ES_CTX ctx,
/* CLOCK_MONOTONIC: the consumer adds boot time's lead */
#define ES_NOW() bpf_ktime_get_ns()
#else
#define ES_FUNC __noinline
#define ES_CTX_PARAM
#define ES_CTX
#define ES_NOW() bpf_ktime_get_boot_ns()
#endif

/*
 * Loads through BTF-typed kernel pointers (bpf_get_current_task_btf(),
 * 5.11; the path walk's bpf_rdonly_cast(), task.bpf.h) need the kernel's
 * own BTF: the verifier types them by it, and libbpf resolves a kfunc
 * against it even when it relocates against an external file. The ring
 * builds load only where the kernel has its own BTF (the loader picks the
 * perf builds elsewhere); the perf builds, which also serve kernels
 * without it, keep one helper call a read.
 */
#ifdef ES_PERFBUF
#define ES_TASK_BTF 0
#else
#define ES_TASK_BTF bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)

/*
 * Set by the loader (objects.py): 1 when libbpf relocates against the
 * kernel's own BTF. A kfunc's type-id argument (bpf_core_cast(), the path
 * walk's) is relocated against the BTF libbpf was given, and the verifier
 * reads it as an id of the kernel's: with an external file (Config.btf_path,
 * a minimized one) the ids differ, and the walk keeps the helper reads. A
 * frozen read-only value: the verifier drops the branch it rules out.
 */
const volatile __u8 cfg_kernel_btf = 0;
#endif

/*
 * x with the verifier's bound [0, max] (max a constant) on the very register
 * used next: older verifiers (5.4) track no bounds through 32-bit moves or
 * through a spill to the stack, so a clamp clang placed earlier may reach
 * the helper as an unbounded value.
 */
#define ES_CLAMP(x, max)                                                                  \
	({                                                                                \
		__u64 _n = (x);                                                           \
		asm volatile("if %[n] <= %[m] goto +1\n\t%[n] = %[m]" : [n] "+r"(_n) : [m] "i"(max)); \
		_n;                                                                       \
	})

/* x & mask, on the register used next (see ES_CLAMP) */
#define ES_MASK(x, mask)                                                      \
	({                                                                    \
		__u64 _m = (x);                                               \
		asm volatile("%[m] &= %[k]" : [m] "+r"(_m) : [k] "i"(mask)); \
		_m;                                                           \
	})

/*
 * A hook that runs another hook's program, read by the loader
 * (sources/ebpf/objects.py, SHARED_SECTION): hook `hook`'s variant
 * `variant` is program `prog`, attached at `section` (a section name of the
 * program's own kind: another tracepoint for a classic tracepoint program),
 * or, with an empty section, covered by the program's own attachment. A
 * program shared by several hooks is loaded and verified once; the loader
 * loads it for any of them and gives it up for all of them together.
 */
#define ES_SHARED_HOOK(hook, variant, prog, section)                                 \
	const char es_shared_##hook##_##variant[] SEC(".es_shared") __attribute__((used)) = \
		#prog "\0" section

#endif /* EBPFSENSOR_COMPAT_BPF_H */
