// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The attach floor: programs that return at once, one per program type the
 * sensor's hooks use. `ebpfsensor diagnostic overhead` and the bench attach
 * them to the very tracepoints, functions and LSM hooks the sensor attached
 * in the same run, so that what a monitored syscall costs splits into what
 * any program there costs (the kernel's tracepoint or trampoline machinery)
 * and what the sensor's own programs add. Never loaded by the Sensor.
 *
 * No section names a target: user space passes it at attach time (classic,
 * raw tracepoints and kprobes: one program serves every target) or before
 * load (tp_btf, fentry, fexit, lsm: the target is fixed in the program, so
 * one load per target).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp")
int handle_floor_tp(void *ctx)
{
	return 0;
}

SEC("raw_tp")
int handle_floor_raw(void *ctx)
{
	return 0;
}

SEC("tp_btf")
int handle_floor_btf(void *ctx)
{
	return 0;
}

SEC("fentry")
int handle_floor_fentry(void *ctx)
{
	return 0;
}

SEC("fexit")
int handle_floor_fexit_fentry(void *ctx)
{
	return 0;
}

/* 0 lets the operation through, as the sensor's LSM programs do */
SEC("lsm")
int handle_floor_lsm(void *ctx)
{
	return 0;
}

SEC("kprobe")
int handle_floor_kprobe(void *ctx)
{
	return 0;
}

SEC("kretprobe")
int handle_floor_kretprobe_kprobe(void *ctx)
{
	return 0;
}
