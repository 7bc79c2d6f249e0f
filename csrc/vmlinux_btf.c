/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One parse of the kernel's BTF for all the objects of a start.
 *
 * libbpf reads and parses /sys/kernel/btf/vmlinux (5 MB and more, read from
 * sysfs a page per read call) once per bpf_object that relocates against it
 * or names a kfunc, and frees it when that object's load ends. A sensor loads
 * half a dozen objects side by side, each paying the read, the parse and the
 * page faults of its own copy. The link (-Wl,--wrap=btf__load_vmlinux_btf
 * -Wl,--wrap=btf__free) routes libbpf's calls here: while a caller holds the
 * cache (es_vmlinux_btf_hold), every load gets the same parsed BTF, which
 * libbpf only reads, and its frees of it only drop a user. The last of the
 * holder and the users frees it, so nothing is kept past a start; outside a
 * hold, libbpf's own functions run unchanged. The kernel's own BTF is fixed
 * while it runs, so the shared copy is the one each load would have read.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <bpf/btf.h>

/* hidden: called from this extension alone, its libbpf's calls included */
#define ES_HIDDEN __attribute__((visibility("hidden")))

ES_HIDDEN void es_vmlinux_btf_hold(void);
ES_HIDDEN void es_vmlinux_btf_release(void);
ES_HIDDEN unsigned long es_vmlinux_btf_parses(void);
ES_HIDDEN int es_vmlinux_btf_cached(void);

struct btf *__real_btf__load_vmlinux_btf(void);
void __real_btf__free(struct btf *btf);
ES_HIDDEN struct btf *__wrap_btf__load_vmlinux_btf(void);
ES_HIDDEN void __wrap_btf__free(struct btf *btf);

static pthread_mutex_t es_vmlinux_lock = PTHREAD_MUTEX_INITIALIZER;
/* callers that asked for the cache, loads that hold the shared copy */
static unsigned es_vmlinux_holders, es_vmlinux_users;
static struct btf *es_vmlinux_shared;
/* libbpf's parses of the kernel's BTF, shared or not (for the tests) */
static unsigned long es_vmlinux_parses;

/* under the lock: free the shared copy once nothing holds or uses it */
static void es_vmlinux_drop_unused(void)
{
	if (es_vmlinux_shared && !es_vmlinux_holders && !es_vmlinux_users) {
		__real_btf__free(es_vmlinux_shared);
		es_vmlinux_shared = NULL;
	}
}

/* a fork while another thread parses must not leave the child a lock that
 * no thread of it will release */
static void es_vmlinux_prefork(void)
{
	pthread_mutex_lock(&es_vmlinux_lock);
}

static void es_vmlinux_postfork(void)
{
	pthread_mutex_unlock(&es_vmlinux_lock);
}

/* registered when the extension is loaded: pthread_once would need glibc
 * 2.34's symbol version, and the wheel runs on glibc 2.17 */
__attribute__((constructor)) static void es_vmlinux_init(void)
{
	pthread_atfork(es_vmlinux_prefork, es_vmlinux_postfork, es_vmlinux_postfork);
}

void es_vmlinux_btf_hold(void)
{
	pthread_mutex_lock(&es_vmlinux_lock);
	es_vmlinux_holders++;
	pthread_mutex_unlock(&es_vmlinux_lock);
}

void es_vmlinux_btf_release(void)
{
	pthread_mutex_lock(&es_vmlinux_lock);
	if (es_vmlinux_holders)
		es_vmlinux_holders--;
	es_vmlinux_drop_unused();
	pthread_mutex_unlock(&es_vmlinux_lock);
}

unsigned long es_vmlinux_btf_parses(void)
{
	unsigned long n;

	pthread_mutex_lock(&es_vmlinux_lock);
	n = es_vmlinux_parses;
	pthread_mutex_unlock(&es_vmlinux_lock);
	return n;
}

int es_vmlinux_btf_cached(void)
{
	int cached;

	pthread_mutex_lock(&es_vmlinux_lock);
	cached = es_vmlinux_shared != NULL;
	pthread_mutex_unlock(&es_vmlinux_lock);
	return cached;
}

struct btf *__wrap_btf__load_vmlinux_btf(void)
{
	struct btf *btf;
	int err;

	pthread_mutex_lock(&es_vmlinux_lock);
	es_vmlinux_parses += !es_vmlinux_shared;
	if (!es_vmlinux_shared && !es_vmlinux_holders) {
		pthread_mutex_unlock(&es_vmlinux_lock);
		return __real_btf__load_vmlinux_btf();
	}
	if (!es_vmlinux_shared) {
		/* parsed under the lock: the other loads wait for it rather than
		 * parse their own */
		btf = __real_btf__load_vmlinux_btf();
		if (!btf) {
			err = errno;
			pthread_mutex_unlock(&es_vmlinux_lock);
			errno = err;
			return NULL;
		}
		/* the one value libbpf computes lazily and stores into a BTF it
		 * otherwise only reads: set before any other thread reads it */
		btf__pointer_size(btf);
		es_vmlinux_shared = btf;
	}
	es_vmlinux_users++;
	btf = es_vmlinux_shared;
	pthread_mutex_unlock(&es_vmlinux_lock);
	return btf;
}

void __wrap_btf__free(struct btf *btf)
{
	bool shared;

	if (!btf)
		return;
	pthread_mutex_lock(&es_vmlinux_lock);
	shared = btf == es_vmlinux_shared;
	if (shared) {
		if (es_vmlinux_users)
			es_vmlinux_users--;
		es_vmlinux_drop_unused();
	}
	pthread_mutex_unlock(&es_vmlinux_lock);
	if (!shared)
		__real_btf__free(btf);
}
