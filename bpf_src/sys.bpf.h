/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Syscall-based records: arguments stashed at sys_enter, finished at
 * sys_exit once the result is known. Only BPF code includes this.
 *
 * Every syscall-based record (file.bpf.c, net.bpf.c, priv.bpf.c) hooks
 * the classic per-syscall tracepoints (syscalls:sys_enter_X /
 * sys_exit_X), attached only for the syscalls of enabled kinds, not one
 * raw sys_enter + sys_exit pair dispatching on the syscall id. The raw
 * pair runs a program on every syscall of the machine, even to return at
 * once; the kernel checks the classic tracepoints against a per-syscall
 * bitmap before any program runs, so unrelated syscalls, nearly all of
 * them, stay cheap, and whatever a recorded syscall pays for its own pair
 * is small next to the cost of its record. Small per-syscall programs also
 * keep each verifier pass short. Both designs see the same syscalls, and
 * neither io_uring's operations (the open alone has a variant inside the
 * kernel that sees them: file.bpf.c). The price is paid at detach: each classic
 * tracepoint link waits for an RCU grace period when destroyed, which is
 * why the loader detaches links from several threads at once. Only the
 * diagnostic (diag.bpf.c), which counts every syscall, uses raw sys_enter.
 * The measurements: docs/design.md, "Measurements behind the design".
 */
#ifndef EBPFSENSOR_SYS_BPF_H
#define EBPFSENSOR_SYS_BPF_H

#include "task.bpf.h"
#include <bpf/bpf_endian.h>

static __always_inline void fill_sys_ctx(struct sys_ctx *s, struct trace_event_raw_sys_exit *ctx)
{
	s->result = ctx->ret;
	/* __syscall_nr is an int; the 4 bytes after it are padding */
	s->syscall_nr = (__u32)ctx->id;
	s->_pad0 = 0;
}

static __always_inline void fill_header(struct event_header *h, __u32 type)
{
	h->ts_ns = ES_NOW();
	h->type = type;
}

/* one of the current task's open files, or NULL */
static __always_inline struct file *fd_file(__u64 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;

	if (fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	if (bpf_core_read(&f, sizeof(f), &fds[fd]))
		return NULL;
	return f;
}

/* submit a record built in a per-CPU scratch buffer, with its real size */
static __always_inline void emit(void *ctx, void *rec, __u32 type, __u64 size)
{
	if (es_output(ctx, &activity_events, rec, size)) {
		stat_inc(type, STAT_DROPPED);
		return;
	}
	stat_inc(type, STAT_PRODUCED);
}

#endif /* EBPFSENSOR_SYS_BPF_H */
