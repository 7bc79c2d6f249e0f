// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Network: connect, accept/accept4, bind, listen for IPv4, IPv6 and unix
 * sockets. Addresses come from the kernel's socket at sys_exit, found
 * through the fd (accept: the new fd), so ephemeral ports, the peer of an
 * accepted connection and the peer a connect reached are the real ones,
 * whatever the caller's memory holds by then. The address a process asks
 * for (connect's peer, bind's name) is read from its sockaddr at sys_enter
 * and reported only when the kernel's socket has none (the call failed), so
 * a failed call still says what it tried.
 */
#include "sys.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const struct net_event *anchor_net_event __attribute__((unused));

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define SUN_MASK 127 /* above SUN_PATH_LEN, a power of two minus one */

/* what sys_enter saw, kept until sys_exit */
struct net_args {
	__u64 fd;
	__u32 type; /* EVENT_NET_* */
	__u32 flags;
	__s32 backlog;
	__u16 family; /* of the caller's sockaddr, 0 when it has none */
	__u16 port;   /* host order */
	__u32 path_len;
	__u32 _pad0;
	__u8 addr[16];
	char path[SUN_MASK + 1];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STASH_ENTRIES);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct net_args);
} net_args SEC(".maps");

/* records and stashed arguments are built here, not on the BPF stack */
struct net_buf {
	struct net_event ev;
	char tail[2 * (SUN_MASK + 1)];
};

struct net_scratch {
	struct net_buf rec;
	struct net_args args;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct net_scratch);
} net_scratch SEC(".maps");

static __always_inline struct net_scratch *scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&net_scratch, &zero);
}

/* the caller's sockaddr: family, address and port, or a unix path */
static __always_inline void read_sockaddr(struct net_args *a, const void *uaddr, __u64 addrlen)
{
	__u16 family = 0;
	__u32 n;
	long ret;

	if (!uaddr || addrlen < sizeof(family) || bpf_probe_read_user(&family, sizeof(family), uaddr))
		return;
	a->family = family;
	if (family == AF_INET && addrlen >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in sin;

		if (bpf_probe_read_user(&sin, sizeof(sin), uaddr))
			return;
		a->port = bpf_ntohs(sin.sin_port);
		__builtin_memcpy(a->addr, &sin.sin_addr, 4);
	} else if (family == AF_INET6 && addrlen >= 24 /* SIN6_LEN_RFC2133 */) {
		struct sockaddr_in6 sin6;

		if (bpf_probe_read_user(&sin6, 24, uaddr))
			return;
		a->port = bpf_ntohs(sin6.sin6_port);
		__builtin_memcpy(a->addr, &sin6.sin6_addr, 16);
	} else if (family == AF_UNIX && addrlen > 2) {
		const char *sun_path = (const char *)uaddr + 2;
		char first = 0;

		n = addrlen - 2 > SUN_PATH_LEN ? SUN_PATH_LEN : addrlen - 2;
		bpf_probe_read_user(&first, 1, sun_path);
		if (first) {
			/* a path ends at its NUL, or at addrlen */
			ret = bpf_probe_read_user_str(a->path, ES_MASK(n, SUN_MASK) + 1, sun_path);
			a->path_len = ret > 0 ? ret - 1 : 0;
		} else {
			/* an abstract name is exactly addrlen - 2 bytes, NULs included */
			a->path_len = bpf_probe_read_user(a->path, ES_MASK(n, SUN_MASK), sun_path) ? 0 : n;
		}
	}
}

static __always_inline int net_enter(__u32 type, __u64 fd, const void *uaddr, __u64 addrlen,
				     __u32 flags, __s32 backlog)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct net_scratch *s;
	struct net_args *a;

	/* before anything is stashed: an excluded process costs a lookup */
	if (skip_event(type))
		return 0;
	s = scratch();
	if (!s)
		return 0;
	a = &s->args;
	__builtin_memset(a, 0, offsetof(struct net_args, path));
	a->type = type;
	a->fd = fd;
	a->flags = flags;
	a->backlog = backlog;
	read_sockaddr(a, uaddr, addrlen);
	/* a failed update is counted at sys_exit, which finds nothing */
	bpf_map_update_elem(&net_args, &id, a, BPF_ANY);
	return 0;
}

/* the socket behind one of the current task's fds, or NULL */
static __always_inline struct socket *fd_socket(__u64 fd)
{
	struct file *f = fd_file(fd);

	if (!f || (BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	return BPF_CORE_READ(f, private_data);
}

/* a unix socket's bound name into dst (SUN_PATH_LEN bytes); its length */
static __always_inline __u32 unix_name(char *dst, struct sock *sk)
{
	struct unix_address *addr = BPF_CORE_READ((struct unix_sock *)sk, addr);
	__u32 len;

	if (!addr)
		return 0;
	/* the kernel counts sun_family, and a path's terminating NUL */
	len = BPF_CORE_READ(addr, len);
	if (len <= 2)
		return 0;
	len -= 2;
	if (len > SUN_PATH_LEN)
		len = SUN_PATH_LEN;
	/* keep the compiler from dropping the mask the verifier needs */
	asm volatile("" : "+r"(len));
	if (bpf_probe_read_kernel(dst, len & SUN_MASK, &addr->name[0].sun_path))
		return 0;
	return len & SUN_MASK;
}

#define EINPROGRESS 115

/* the socket has a peer: an address or port (INET), a connected peer (unix) */
static __always_inline int has_peer(const struct net_event *e, __u32 unix_peer)
{
	__u64 a0, a1;

	if (e->family == AF_UNIX)
		return unix_peer;
	__builtin_memcpy(&a0, e->remote_addr, 8);
	__builtin_memcpy(&a1, &e->remote_addr[8], 8);
	return a0 || a1 || e->remote_port;
}

static __always_inline int net_exit(struct trace_event_raw_sys_exit *ctx, __u32 kind)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct net_args *a = bpf_map_lookup_elem(&net_args, &id);
	__u32 local_len = 0, remote_len = 0, type, unix_peer = 0;
	int connected = ctx->ret == 0 || ctx->ret == -EINPROGRESS;
	struct net_scratch *s;
	struct net_event *e;
	struct socket *sock;
	struct sock *sk = NULL;
	__u64 fd;

	if (!a) {
		stash_missing(kind);
		return 0;
	}
	/* a stale entry of a syscall that never returned is not this one's */
	if (a->type != kind)
		return 0;
	/* a non-blocking listener with nothing to accept: an event loop's
	 * every wakeup ends with one, and no connection was made */
	if (kind == EVENT_NET_ACCEPT && ctx->ret == -EAGAIN) {
		stat_inc(kind, STAT_FILTERED);
		goto out;
	}
	s = scratch();
	if (!s)
		goto out;
	type = kind;
	e = &s->rec.ev;
	__builtin_memset(e, 0, sizeof(*e));
	fill_header(&e->hdr, type);
	fill_task_ctx(&e->task, (struct task_struct *)bpf_get_current_task());
	fill_sys_ctx(&e->sys, ctx);
	e->fd = a->fd;
	e->flags = a->flags;
	e->backlog = a->backlog;

	/* accept: the new connection's socket, the listener's when it failed */
	fd = a->fd;
	if (type == EVENT_NET_ACCEPT && ctx->ret >= 0)
		fd = ctx->ret;
	sock = fd_socket(fd);
	if (sock) {
		e->sock_type = BPF_CORE_READ(sock, type);
		sk = BPF_CORE_READ(sock, sk);
	}
	if (sk) {
		e->local_source = PATH_SOURCE_KERNEL;
		e->remote_source = PATH_SOURCE_KERNEL;
		e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
		e->protocol = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
		if (e->family == AF_INET) {
			bpf_core_read(e->local_addr, 4, &sk->__sk_common.skc_rcv_saddr);
			bpf_core_read(e->remote_addr, 4, &sk->__sk_common.skc_daddr);
		} else if (e->family == AF_INET6) {
			bpf_core_read(e->local_addr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
			bpf_core_read(e->remote_addr, 16, &sk->__sk_common.skc_v6_daddr);
		}
		if (e->family == AF_INET || e->family == AF_INET6) {
			e->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
			e->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		} else if (e->family == AF_UNIX) {
			local_len = unix_name(s->rec.tail, sk);
			if (type == EVENT_NET_ACCEPT || type == EVENT_NET_CONNECT) {
				struct sock *peer = BPF_CORE_READ((struct unix_sock *)sk, peer);

				unix_peer = peer != NULL;
				if (peer)
					remote_len = unix_name(&s->rec.tail[local_len & SUN_MASK], peer);
			}
		}
	} else {
		e->family = a->family;
	}

	/* connect: once it succeeded (or a non-blocking TCP connect is under
	 * way), the peer is the socket's, above: what the kernel connected to,
	 * whatever the caller's memory holds by now. The address asked for only
	 * when the kernel has none (the connect failed); bind's likewise */
	if (a->family && a->family == e->family) {
		if (type == EVENT_NET_CONNECT && !(connected && has_peer(e, unix_peer))) {
			e->remote_source = PATH_SOURCE_ARG;
			__builtin_memcpy(e->remote_addr, a->addr, 16);
			e->remote_port = a->port;
			if (a->family == AF_UNIX) {
				remote_len = a->path_len & SUN_MASK;
				bpf_probe_read_kernel(&s->rec.tail[local_len & SUN_MASK], remote_len, a->path);
			}
		} else if (type == EVENT_NET_BIND && ctx->ret < 0) {
			e->local_source = PATH_SOURCE_ARG;
			__builtin_memcpy(e->local_addr, a->addr, 16);
			e->local_port = a->port;
			if (a->family == AF_UNIX) {
				local_len = a->path_len & SUN_MASK;
				bpf_probe_read_kernel(s->rec.tail, local_len, a->path);
			}
		}
	}
	local_len &= SUN_MASK;
	remote_len &= SUN_MASK;
	e->local_path_len = local_len;
	e->remote_path_len = remote_len;
	/* the size from registers, not re-read from the buffer: the verifier
	 * knows the bounds of the former only */
	e->hdr.size = sizeof(*e) + local_len + remote_len;
	emit(ctx, &s->rec, type, ES_CLAMP(sizeof(*e) + local_len + remote_len, sizeof(s->rec)));
out:
	bpf_map_delete_elem(&net_args, &id);
	return 0;
}

SEC("tp/syscalls/sys_enter_connect")
int handle_connect_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return net_enter(EVENT_NET_CONNECT, ctx->args[0], (void *)ctx->args[1], ctx->args[2], 0, 0);
}

SEC("tp/syscalls/sys_exit_connect")
int handle_connect_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	return net_exit(ctx, EVENT_NET_CONNECT);
}

SEC("tp/syscalls/sys_enter_bind")
int handle_bind_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return net_enter(EVENT_NET_BIND, ctx->args[0], (void *)ctx->args[1], ctx->args[2], 0, 0);
}

SEC("tp/syscalls/sys_exit_bind")
int handle_bind_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	return net_exit(ctx, EVENT_NET_BIND);
}

SEC("tp/syscalls/sys_enter_listen")
int handle_listen_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return net_enter(EVENT_NET_LISTEN, ctx->args[0], NULL, 0, 0, (__s32)ctx->args[1]);
}

SEC("tp/syscalls/sys_exit_listen")
int handle_listen_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	return net_exit(ctx, EVENT_NET_LISTEN);
}

/* accept's sockaddr is an output: the peer comes from the new socket */
SEC("tp/syscalls/sys_enter_accept")
int handle_accept_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return net_enter(EVENT_NET_ACCEPT, ctx->args[0], NULL, 0, 0, 0);
}

SEC("tp/syscalls/sys_exit_accept")
int handle_accept_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	return net_exit(ctx, EVENT_NET_ACCEPT);
}

SEC("tp/syscalls/sys_enter_accept4")
int handle_accept4_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return net_enter(EVENT_NET_ACCEPT, ctx->args[0], NULL, 0, (__u32)ctx->args[3], 0);
}

SEC("tp/syscalls/sys_exit_accept4")
int handle_accept4_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	return net_exit(ctx, EVENT_NET_ACCEPT);
}
