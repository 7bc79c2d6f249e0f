/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every record that crosses a ring buffer, defined once. BPF programs include
 * this file; build_ext.py feeds the cdef zone to cffi and #includes the whole
 * file in the extension, so the C compiler checks the same text.
 *
 * Rules (see README, "Adding a record"): fixed-width fields only, explicit
 * padding, sizeof a multiple of 8, every record starts with struct
 * event_header, variable data follows the fixed part in the order of the
 * __u32 <field>_len members. Event type numbers never change once released.
 */
#ifndef EBPFSENSOR_EVENTS_H
#define EBPFSENSOR_EVENTS_H

#ifdef __bpf__
#include "vmlinux.h"
#else
#include <linux/types.h>
#endif

/* cdef-begin */
#define TASK_COMM_LEN 16
#define TTY_NAME_LEN 32
#define PATH_LEN 4096
#define ARGV_LEN 8192
#define MAX_PATH_DEPTH 64
#define MAX_RECORD_LEN 32768 /* no record is larger, tail included */

/*
 * Numbers are stable once released. Ranges: 1-9 process lifecycle,
 * 10-29 file, 30-39 network, 40-59 privilege and integrity.
 */
enum event_type {
	EVENT_NONE = 0,
	EVENT_EXEC = 1,
	EVENT_FORK = 2,
	EVENT_EXIT = 3,
	EVENT_TYPE_MAX = 64,
};

/* clone flags reconstructed from what the child shares with its parent */
#define FORK_CLONE_VM 0x00000100
#define FORK_CLONE_FS 0x00000200
#define FORK_CLONE_FILES 0x00000400
#define FORK_CLONE_SIGHAND 0x00000800
#define FORK_CLONE_THREAD 0x00010000
#define FORK_CLONE_NEWNS 0x00020000
#define FORK_CLONE_NEWCGROUP 0x02000000
#define FORK_CLONE_NEWUTS 0x04000000
#define FORK_CLONE_NEWIPC 0x08000000
#define FORK_CLONE_NEWUSER 0x10000000
#define FORK_CLONE_NEWPID 0x20000000
#define FORK_CLONE_NEWNET 0x40000000

struct event_header {
	__u64 ts_ns; /* CLOCK_BOOTTIME */
	__u32 type;  /* enum event_type */
	__u32 size;  /* whole record, tail included */
};

/* the process header every record carries */
struct task_ctx {
	__u64 cgroup_id;
	__u64 start_time_ns; /* CLOCK_BOOTTIME at task start */
	__u32 pid;	     /* thread group id */
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u32 _pad0;
	char comm[TASK_COMM_LEN];
};

/* what every syscall-based record adds to the process header */
struct sys_ctx {
	__s64 result;	  /* the syscall's return value, -errno on failure */
	__u32 syscall_nr; /* this architecture's syscall number */
	__u32 _pad0;
};

struct exec_event {
	struct event_header hdr;
	struct task_ctx task;
	__u32 euid;
	__u32 egid;
	__u32 suid;
	__u32 sgid;
	__u32 fsuid;
	__u32 fsgid;
	__u32 loginuid;
	__u32 sessionid;
	__u32 pid_ns;
	__u32 mnt_ns;
	__u32 net_ns;
	__u32 user_ns;
	__u32 old_tid; /* tid before exec, differs when a thread exec'd */
	__u8 argv_truncated;
	__u8 exe_truncated;
	__u8 cwd_truncated;
	__u8 parent_exe_truncated;
	__u32 _pad0;
	char parent_comm[TASK_COMM_LEN];
	char tty[TTY_NAME_LEN];
	__u32 exe_len;
	__u32 cwd_len;
	__u32 parent_exe_len;
	__u32 argv_len;
};

struct fork_event {
	struct event_header hdr;
	struct task_ctx task; /* the parent */
	__u64 child_start_time_ns;
	__u64 clone_flags; /* FORK_CLONE_*, reconstructed */
	__u32 child_pid;
	__u32 child_tid;
};

struct exit_event {
	struct event_header hdr;
	struct task_ctx task;
	__u64 duration_ns;  /* from task start to exit */
	__s32 exit_code;    /* argument of exit(), 0 when killed */
	__u32 exit_signal;  /* signal that ended it, 0 for a normal exit */
	__u8 core_dumped;
	__u8 is_thread;	    /* a thread ended, the process lives on */
	__u8 _pad0[6];
};

/* per event type, summed over CPUs by user space */
struct kind_stats {
	__u64 produced;	 /* records submitted to a ring */
	__u64 dropped;	 /* ring full: record lost, counted here */
	__u64 truncated; /* submitted with a truncated field */
	__u64 filtered;	 /* suppressed on purpose (threads, disabled kinds) */
};
/*
 * Diagnostic statistics (diag.bpf.c): map keys and values read by user
 * space, not records. Loaded only while a diagnostic runs.
 */
#define DIAG_MAX_SYSCALLS 1024	  /* syscall ids counted; larger ids are counted apart */
#define DIAG_PATH_LEN 256	  /* path bytes kept per key, NUL included */
#define DIAG_MAX_INITIATORS 16384 /* executables counted; more are counted apart */
#define DIAG_MAX_PATHS 16384	  /* file paths counted; more are counted apart */

/* per syscall id, filled by user space: what an endpoint agent monitors,
 * and which argument names the file the call acts on (-1: none) */
struct diag_syscall_spec {
	__u8 monitored;
	__s8 path_arg; /* a user path string */
	__s8 dfd_arg;  /* the directory fd a relative path_arg is resolved against */
	__s8 fd_arg;   /* an fd whose file is the object (fchmod, ftruncate) */
};

/* an executable's identity: mm->exe_file->f_inode */
struct diag_initiator_key {
	__u64 ino;
	__u32 dev; /* the kernel's s_dev: major << 20 | minor */
	__u32 _pad0;
};

/* an executable and one of the monitored syscalls it made */
struct diag_initiator_syscall_key {
	__u64 ino;
	__u32 dev;
	__u32 nr;
};

struct diag_initiator {
	__u64 count; /* monitored syscalls entered */
	__u32 path_len;
	__u8 truncated; /* path longer than DIAG_PATH_LEN - 1, or deeper than MAX_PATH_DEPTH */
	__u8 _pad0[3];
	char path[DIAG_PATH_LEN]; /* resolved once, when first seen */
};

struct diag_path_key {
	char path[DIAG_PATH_LEN]; /* NUL-terminated, zero-filled */
};

struct diag_path_count {
	__u64 count;
	__u8 truncated; /* the path was longer: these are its first DIAG_PATH_LEN - 1 bytes */
	__u8 _pad0[7];
};

/* what could not be counted, per CPU */
struct diag_counters {
	__u64 syscalls;		    /* every syscall entered */
	__u64 syscalls_out_of_range; /* id < 0 or >= DIAG_MAX_SYSCALLS */
	__u64 syscalls_compat;	    /* 32-bit syscalls (another numbering), not counted per id */
	__u64 monitored;	    /* syscalls in the monitored set */
	__u64 initiators_full;	    /* monitored syscalls of an executable that did not fit */
	__u64 initiators_no_exe;    /* monitored syscalls of tasks without an executable */
	__u64 initiator_syscalls_full; /* monitored syscalls not counted per initiator and id */
	__u64 paths;		    /* monitored syscalls that name a file */
	__u64 paths_full;	    /* of which the path did not fit in the map */
	__u64 paths_unreadable;	    /* of which the path could not be read */
	__u64 paths_truncated;	    /* of which the path was longer than DIAG_PATH_LEN - 1 */
};
/* cdef-end */

#endif /* EBPFSENSOR_EVENTS_H */
