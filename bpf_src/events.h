/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every record that crosses a ring buffer, defined once. BPF programs include
 * this file; build_ext.py feeds the cdef zone to cffi and #includes the whole
 * file in the extension, so the C compiler checks the same text.
 *
 * Rules (see docs/adding-an-event-kind.md): fixed-width fields only, explicit
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
#define SUN_PATH_LEN 108	    /* sizeof(sockaddr_un.sun_path) */
#define MEMFD_NAME_LEN 256	    /* a memfd name is at most 249 bytes */
#define PROG_NAME_LEN 16
#define MODULE_NAME_LEN 56	    /* 64 - sizeof(unsigned long) */
#define MODULE_ARGS_LEN 1024
#define FSTYPE_LEN 256

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
	EVENT_NET_CONNECT = 30,
	EVENT_NET_ACCEPT = 31,
	EVENT_NET_BIND = 32,
	EVENT_NET_LISTEN = 33,
	EVENT_CRED_CHANGE = 40,
	EVENT_KILL = 41,
	EVENT_SETSID = 42,
	EVENT_PTRACE = 43,
	EVENT_MEMFD_CREATE = 44,
	EVENT_BPF_CALL = 45,
	EVENT_MODULE_LOAD = 46,
	EVENT_MOUNT = 47,
	EVENT_UMOUNT = 48,
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
	__u8 exe_deleted; /* the image's file has no links left */
	__u8 exe_memfd;	  /* the image is a memfd: fileless execution */
	__u8 _pad0[2];
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
 * connect, accept/accept4, bind, listen (EVENT_NET_*), one layout for all
 * four. Addresses are in network byte order, IPv4 in the first 4 bytes;
 * ports in host order. Unix sockets carry paths instead: an abstract name
 * starts with a NUL byte. A field the syscall does not have is zero.
 */
struct net_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__s32 fd;	  /* the socket the syscall was given (accept: the listener) */
	__u32 flags;	  /* accept4 flags */
	__s32 backlog;	  /* listen */
	__u16 family;	  /* AF_INET, AF_INET6, AF_UNIX, ... */
	__u16 sock_type;  /* SOCK_STREAM, SOCK_DGRAM, ... */
	__u16 protocol;	  /* IPPROTO_TCP, IPPROTO_UDP, ... (0 for unix) */
	__u16 local_port;
	__u16 remote_port;
	__u8 local_source;  /* PATH_SOURCE_*: the socket's (KERNEL) or the sockaddr asked for (ARG) */
	__u8 remote_source; /* likewise for the peer */
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u32 local_path_len;  /* unix: the socket's own name */
	__u32 remote_path_len; /* unix: the peer's name */
};

/*
 * setuid, setgid, setreuid, setregid, setresuid, setresgid, setfsuid,
 * setfsgid, capset: the task's credentials before and after the call.
 */
struct cred_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__u32 old_uid;
	__u32 old_euid;
	__u32 old_suid;
	__u32 old_fsuid;
	__u32 old_gid;
	__u32 old_egid;
	__u32 old_sgid;
	__u32 old_fsgid;
	__u32 new_uid;
	__u32 new_euid;
	__u32 new_suid;
	__u32 new_fsuid;
	__u32 new_gid;
	__u32 new_egid;
	__u32 new_sgid;
	__u32 new_fsgid;
	__u64 old_cap_inheritable;
	__u64 old_cap_permitted;
	__u64 old_cap_effective;
	__u64 new_cap_inheritable;
	__u64 new_cap_permitted;
	__u64 new_cap_effective;
	__u32 arg0; /* the ids asked for, in argument order; 0 for capset */
	__u32 arg1;
	__u32 arg2;
	__u32 _pad0;
};

/* kill, tkill, tgkill: a signal sent to another process */
struct kill_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__s32 target_pid; /* as the caller gave it (its pid namespace); 0 for tkill */
	__s32 target_tid; /* tkill, tgkill; 0 for kill */
	__u32 signal;
	__u32 _pad0;
};

/* setsid: result is the new session id */
struct setsid_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
};

/* ptrace requests that attach to or change the tracee */
struct ptrace_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__s64 request;
	__u64 addr;
	__u64 data;
	__s32 target_pid; /* in the caller's pid namespace */
	__u32 _pad0;
};

/* memfd_create: result is the new fd */
struct memfd_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__u32 flags; /* MFD_* */
	__u32 name_len;
};

/* bpf(): every command but map element access */
struct bpf_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__u32 cmd;	 /* BPF_PROG_LOAD, BPF_MAP_CREATE, ... */
	__u32 prog_type; /* BPF_PROG_LOAD: the program's type, else 0 */
	__u32 insn_cnt;	 /* BPF_PROG_LOAD: its instructions, else 0 */
	__u32 attr_size; /* the size argument */
	char prog_name[PROG_NAME_LEN]; /* BPF_PROG_LOAD */
};

/*
 * init_module, finit_module. The name is the module's own, known once the
 * kernel has parsed the image (empty when it failed before that).
 */
struct module_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__u64 image_len; /* init_module: the image's size */
	__s32 fd;	 /* finit_module: the file; -1 for init_module */
	__u32 flags;	 /* finit_module: MODULE_INIT_* */
	char name[MODULE_NAME_LEN];
	__u8 path_truncated;
	__u8 _pad0[7];
	__u32 path_len; /* finit_module: the file's absolute path */
	__u32 args_len; /* the parameters string */
};

/*
 * mount(2): the caller's strings as given (target may be relative), and
 * path, the target made absolute: the caller's root (for a target starting
 * with "/") or working directory, resolved from the kernel's structures,
 * then the string. "" for no target.
 */
struct mount_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__u64 flags; /* MS_* */
	__u8 path_truncated;
	__u8 _pad0[3];
	__u32 source_len;
	__u32 target_len;
	__u32 fstype_len;
	__u32 path_len;
	__u32 _pad1;
};

/* umount2(2): target as given, path made absolute as for mount */
struct umount_event {
	struct event_header hdr;
	struct task_ctx task;
	struct sys_ctx sys;
	__u32 flags; /* MNT_*, UMOUNT_* */
	__u32 target_len;
	__u8 path_truncated;
	__u8 _pad0[3];
	__u32 path_len;
};

/*
 * Where a path (or a network address) in a record came from, so a consumer
 * knows how far to trust it: path_source (and new_path_source,
 * target_source) in the file records, local_source and remote_source in
 * net_event. The caller's strings are read from its memory at sys_exit, after
 * the kernel used its own copy (taken early in the syscall): another thread
 * can have rewritten them by then. sys_enter keeps a short string whole, a
 * longer one's length and keyed hash; sys_exit compares.
 */
#define PATH_SOURCE_NONE 0	    /* no such path or address */
#define PATH_SOURCE_KERNEL 1	    /* from the kernel's own objects: the opened file, the fd's file, a path check's entry, the socket */
#define PATH_SOURCE_ARG 2	    /* the caller's string, the same at sys_exit as at sys_enter (net: sockaddr at sys_enter) */
#define PATH_SOURCE_ARG_CHANGED 3   /* the caller's string changed between sys_enter and sys_exit: the sys_enter copy
				     * where it was kept whole (ARG_COPY_LEN - 2 bytes at most), else the sys_exit one */
#define PATH_SOURCE_ARG_UNCHECKED 4 /* the caller's string as sys_exit read it, not compared: sys_enter could not read it */
#define ARG_COPY_LEN 104	    /* bytes of each string sys_enter keeps */

/*
 * File events. Paths: `path` is absolute. For an open that succeeded it is
 * resolved from the opened file's own dentry and mount chain (symlinks,
 * "..", dirfd and mount namespaces resolved by the kernel); so is the entry
 * other calls act on where a hook on the kernel's path checks runs
 * (path_source PATH_SOURCE_KERNEL). Otherwise it is the caller's directory
 * (dirfd, or the cwd for AT_FDCWD, or the root for an absolute string)
 * resolved the same way, joined with the caller's string as passed: the
 * kernel's own lookup of the string is not visible at the syscall
 * tracepoints, so "..", and a symlink in the string's own components, are
 * not resolved there (a dirfd that is not open leaves the string alone).
 * `arg_path` is the caller's string as passed. Tail strings carry no NUL.
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
	__u8 path_source;    /* PATH_SOURCE_* */
	__u8 _pad0[3];
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
	__u8 path_source; /* PATH_SOURCE_* */
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
	__u8 path_source; /* PATH_SOURCE_* */
	__u8 _pad0;
	__u32 path_len;
	__u32 arg_path_len;
	__u32 _pad1;
};

/*
 * rename, renameat, renameat2: path is the old name, new_path the new one.
 * replaced: whether an existing file at new_path was replaced. The syscall
 * tracepoints cannot see it; a hook on the kernel's rename permission check
 * (BPF LSM, fentry or kprobe, where the kernel allows one) can. A failed
 * rename replaced nothing; a successful one with no such hook is UNKNOWN.
 */
#define RENAME_REPLACED_NO 0
#define RENAME_REPLACED_YES 1
#define RENAME_REPLACED_UNKNOWN 2
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
	__u8 replaced;	      /* RENAME_REPLACED_NO / _YES / _UNKNOWN */
	__u8 path_source;     /* PATH_SOURCE_*, of path and arg_path */
	__u8 new_path_source; /* of new_path and new_arg_path */
	__u8 _pad0[5];
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
	__u8 path_source; /* PATH_SOURCE_* */
	__u8 _pad0;
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
	__u8 path_source; /* PATH_SOURCE_* */
	__u8 _pad0;
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
	__u8 _pad0;	      /* file_rename_event.replaced */
	__u8 path_source;     /* PATH_SOURCE_*, of path and arg_path */
	__u8 new_path_source; /* of new_path and new_arg_path */
	__u8 _pad1[5];
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
	__u8 path_source; /* PATH_SOURCE_*, of path and arg_path */
	__u32 target_len;
	__u32 path_len;
	__u32 arg_path_len;
	__u8 target_source; /* of target */
	__u8 _pad0[3];
};

/* per event type, summed over CPUs by user space */
struct kind_stats {
	__u64 produced;	 /* records submitted to a ring */
	__u64 dropped;	 /* ring full: record lost, counted here */
	__u64 truncated; /* submitted with a truncated field */
	__u64 filtered;	 /* suppressed on purpose (threads, disabled kinds) */
	__u64 deduplicated; /* suppressed as a repeat within the dedup window */
	__u64 unmatched;    /* sys_exit without stashed arguments: the call was in
			     * flight at start, or its stash entry evicted */
	__u64 unwatched;    /* read-only opens not reported by the open policy
			     * (cfg_read_opens_all off): not a watched file */
};

/*
 * Exclusions, applied in the kernel before a record is reserved. A process
 * matched by executable identity or name is entered into excluded_tgids at
 * exec (and inherited at fork), so every later hook pays one hash lookup.
 * File records are also matched by path prefix, once their path is resolved.
 */
#define MAX_RULES 256
#define EXCL_DESCENDANTS 1 /* children inherit the exclusion, across exec */
#define EXCL_STICKY 2	   /* kept across exec (pid rules, inherited entries) */

/* bits of excl_active: which rule maps have entries */
#define EXCL_ACTIVE_EXEC 1   /* executable or name rules: checked at exec */
#define EXCL_ACTIVE_CGROUP 2 /* cgroup rules: checked per event */
#define EXCL_ACTIVE_UID 4    /* uid rules: checked per event */
#define EXCL_ACTIVE_PATH 8   /* path prefix rules: checked per file record */

/*
 * A path prefix rule, key of an LPM trie: the prefix with a trailing '/'
 * ("/var/log/"; "/" alone for the root), prefixlen in bits. The kernel
 * limits an LPM key's data to 256 bytes (LPM_DATA_SIZE_MAX); no padding,
 * the key size must be exactly 4 + EXCL_PATH_LEN.
 */
#define EXCL_PATH_LEN 256

struct excl_path_key {
	__u32 prefixlen;
	__u8 path[EXCL_PATH_LEN];
};

struct excl_value {
	__u32 rule;  /* rule id, < MAX_RULES */
	__u32 flags; /* EXCL_* */
};

struct exe_key {
	__u64 dev; /* the kernel's s_dev: major << 20 | minor */
	__u64 ino;
};

/*
 * A watched file (file.bpf.c watched_files): read-only opens of it are
 * reported, by identity, whatever name or mount it is opened through.
 */
#define WATCHED_MAX 4096

struct watched_key {
	__u64 dev; /* the kernel's s_dev: major << 20 | minor */
	__u64 ino;
};

/*
 * A bit per watched identity (file.bpf.c watched_bits, WATCHED_BITS_WORDS
 * words), set by user space before the identity enters watched_files: a
 * clear bit says "not watched" with one load, where the lookup hashes the
 * key and walks a bucket. Bit ((ino ^ dev << 32) * WATCHED_MIX) >>
 * (64 - WATCHED_BITS_SHIFT), modulo 2^64 (a Fibonacci hash), of the array
 * of words, low bit first.
 */
#define WATCHED_BITS_SHIFT 16
#define WATCHED_BITS_WORDS 1024 /* (1 << WATCHED_BITS_SHIFT) / 64 */
#define WATCHED_MIX 0x9E3779B97F4A7C15

struct comm_key {
	char comm[TASK_COMM_LEN];
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
	__s8 path_arg;	/* a user path string */
	__s8 dfd_arg;	/* the directory fd a relative path_arg is resolved against */
	__s8 fd_arg;	/* an fd whose file is the object (fchmod, ftruncate) */
	__s8 flags_arg; /* an open's O_* flags (or, with flags_how, its struct open_how) */
	__u8 flags_how; /* flags_arg points to a struct open_how (openat2) */
	__u8 _pad0[2];
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
	__u64 read_only_opens;	    /* monitored read-only opens, not attributed (the
				     * sensor's open policy reports few of them) */
};

/*
 * The process table's start-up snapshot (iter.bpf.c): a task iterator writes
 * one per process into its seq_file, which user space reads once from the
 * iterator's fd (not a ring record: no event_header). Every field is read
 * from the kernel's own task, as the lifecycle records read theirs. Tail:
 * exe, cwd, argv (NUL-separated, as /proc/PID/cmdline), in the order of the
 * _len members.
 */
struct task_iter_record {
	__u64 start_time_ns; /* the thread-group leader's start_boottime: the lifecycle records' key */
	__u64 cgroup_id;     /* the cgroup v2 id, as the records carry it */
	__u32 size;	     /* whole record, tail included */
	__u32 pid;	     /* thread group id */
	__u32 tid;	     /* the thread read: the leader, or another once the leader has exited */
	__u32 ppid;	     /* the real parent's thread group id */
	__u32 sid;	     /* the session leader's pid */
	__u32 uid;	     /* the objective credentials (real_cred), as /proc shows them */
	__u32 euid;
	__u32 gid;
	__u32 egid;
	__u32 loginuid;	     /* 4294967295 when unset (or no CONFIG_AUDITSYSCALL) */
	__u32 sessionid;
	__u32 exe_len;
	__u32 cwd_len;
	__u32 argv_len;
	__u8 kernel_thread;
	__u8 exited;	     /* every thread has exited: a zombie not yet reaped */
	__u8 exe_memfd;	     /* the image is a memfd */
	__u8 exe_deleted;    /* the image's file has no links left */
	__u8 exe_truncated;
	__u8 cwd_truncated;
	__u8 argv_truncated;
	__u8 argv_read;	     /* argv was copied from the process's memory (the sleepable variant) */
	__u8 argv_title;     /* setproctitle() overwrote the area's last NUL: argv is, as /proc
			      * gives it then, the string at its start (to a NUL, within 4096 bytes) */
	__u8 _pad0[7];
	char comm[TASK_COMM_LEN];
	char tty[TTY_NAME_LEN];
};
/* cdef-end */

#endif /* EBPFSENSOR_EVENTS_H */
