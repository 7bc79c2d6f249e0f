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
	EVENT_FILE_OPEN = 10,
	EVENT_FILE_CREATE = 11,
	EVENT_FILE_UNLINK = 12,
	EVENT_DIR_CREATE = 13,
	EVENT_FILE_RENAME = 14,
	EVENT_FILE_CHMOD = 15,
	EVENT_FILE_CHOWN = 16,
	EVENT_FILE_LINK = 17,
	EVENT_FILE_SYMLINK = 18,
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

/*
 * File events. Paths: `path` is absolute. For an open that succeeded it is
 * resolved from the opened file's own dentry and mount chain (symlinks,
 * "..", dirfd and mount namespaces resolved by the kernel). Otherwise it is
 * the caller's directory (dirfd, or the cwd for AT_FDCWD, or the root for an
 * absolute string) resolved the same way, joined with the caller's string
 * as passed: the kernel's own lookup of the string is not visible at the
 * syscall tracepoints, so "..", and a symlink in the string's own
 * components, are not resolved there (a dirfd that is not open leaves
 * the string alone). `arg_path` is the caller's string
 * as passed. Tail strings carry no NUL.
 */
#define FILE_AT_FDCWD -100

/* FileOpen, and FileCreate (an open that created the file, or failed with
 * O_CREAT; or mknod/mknodat): one layout, two types */
struct file_open_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;  /* result is the new fd */
	__u64 ino;	     /* the opened file's inode, 0 when the open failed */
	__u32 dev;	     /* its device, encoded as st_dev (major << 8 | minor) */
	__u32 flags;	     /* O_* as passed (openat2: how.flags; creat: O_CREAT|O_WRONLY|O_TRUNC) */
	__u32 mode;	     /* creation mode as passed */
	__s32 dirfd;	     /* FILE_AT_FDCWD when relative to the cwd */
	__u8 created;	     /* this open created the file (FMODE_CREATED) */
	__u8 resolved;	     /* path comes from the opened file itself */
	__u8 path_truncated;
	__u8 arg_path_truncated;
	__u32 path_len;
	__u32 arg_path_len;
	__u32 _pad0;
};

/* unlink, unlinkat, rmdir */
struct file_unlink_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__s32 dirfd;
	__u32 flags; /* AT_REMOVEDIR (0x200) for rmdir */
	__u8 is_dir;
	__u8 path_truncated;
	__u8 arg_path_truncated;
	__u8 _pad0;
	__u32 path_len;
	__u32 arg_path_len;
	__u32 _pad1;
};

/* mkdir, mkdirat */
struct dir_create_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__s32 dirfd;
	__u32 mode;
	__u8 path_truncated;
	__u8 arg_path_truncated;
	__u8 _pad0[2];
	__u32 path_len;
	__u32 arg_path_len;
	__u32 _pad1;
};

/* rename, renameat, renameat2: path is the old name, new_path the new one */
struct file_rename_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__s32 dirfd;
	__s32 new_dirfd;
	__u32 flags; /* RENAME_NOREPLACE 1, RENAME_EXCHANGE 2, RENAME_WHITEOUT 4 */
	__u8 path_truncated;
	__u8 arg_path_truncated;
	__u8 new_path_truncated;
	__u8 new_arg_path_truncated;
	__u32 path_len;
	__u32 arg_path_len;
	__u32 new_path_len;
	__u32 new_arg_path_len;
};

/* chmod, fchmod, fchmodat, fchmodat2; for fchmod, dirfd is the fd and
 * arg_path is empty */
struct file_chmod_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__s32 dirfd;
	__u32 mode;
	__u32 flags; /* AT_SYMLINK_NOFOLLOW 0x100, AT_EMPTY_PATH 0x1000 */
	__u8 path_truncated;
	__u8 arg_path_truncated;
	__u8 _pad0[2];
	__u32 path_len;
	__u32 arg_path_len;
};

/* chown, lchown (flags AT_SYMLINK_NOFOLLOW), fchown, fchownat */
struct file_chown_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__s32 dirfd;
	__u32 new_uid; /* 4294967295: unchanged */
	__u32 new_gid;
	__u32 flags;
	__u8 path_truncated;
	__u8 arg_path_truncated;
	__u8 _pad0[2];
	__u32 path_len;
	__u32 arg_path_len;
	__u32 _pad1;
};

/* link, linkat: path is the existing file, new_path the new link */
struct file_link_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__s32 dirfd;
	__s32 new_dirfd;
	__u32 flags; /* AT_SYMLINK_FOLLOW 0x400, AT_EMPTY_PATH 0x1000 */
	__u8 path_truncated;
	__u8 arg_path_truncated;
	__u8 new_path_truncated;
	__u8 new_arg_path_truncated;
	__u32 path_len;
	__u32 arg_path_len;
	__u32 new_path_len;
	__u32 new_arg_path_len;
};

/* symlink, symlinkat: path is the new link, target the string it holds */
struct file_symlink_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__s32 dirfd;
	__u8 target_truncated;
	__u8 path_truncated;
	__u8 arg_path_truncated;
	__u8 _pad0;
	__u32 target_len;
	__u32 path_len;
	__u32 arg_path_len;
	__u32 _pad1;
};

/* per event type, summed over CPUs by user space */
struct kind_stats {
	__u64 produced;	 /* records submitted to a ring */
	__u64 dropped;	 /* ring full: record lost, counted here */
	__u64 truncated; /* submitted with a truncated field */
	__u64 filtered;	 /* suppressed on purpose (threads, disabled kinds) */
	__u64 deduplicated; /* suppressed as a repeat within the dedup window */
};
/* cdef-end */

#endif /* EBPFSENSOR_EVENTS_H */
