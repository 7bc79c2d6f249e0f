/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libbpf's only symbol newer than glibc 2.17 is fmemopen@GLIBC_2.22 (reading
 * an in-memory Kconfig, bpf_object_open_opts.kconfig); on its own it would
 * raise the wheel to manylinux_2_24. The link (-Wl,--wrap=fmemopen) routes
 * every fmemopen call to this read-only version over fopencookie, which glibc
 * has had since 2.2.
 */
/* fopencookie and cookie_io_functions_t are GNU extensions */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "consumer.h"

struct es_memfile {
	const char *buf;
	size_t size, pos;
};

static ssize_t es_memfile_io_read(void *cookie, char *out, size_t n)
{
	struct es_memfile *m = cookie;

	if (n > m->size - m->pos)
		n = m->size - m->pos;
	memcpy(out, m->buf + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static int es_memfile_io_close(void *cookie)
{
	free(cookie);
	return 0;
}

ES_HIDDEN FILE *__wrap_fmemopen(void *buf, size_t size, const char *mode)
{
	cookie_io_functions_t io = { .read = es_memfile_io_read, .close = es_memfile_io_close };
	struct es_memfile *m;
	FILE *f;

	/* libbpf only reads; refuse what this version does not do */
	if (!buf || strcmp(mode, "r") != 0) {
		errno = EINVAL;
		return NULL;
	}
	m = malloc(sizeof(*m));
	if (!m)
		return NULL;
	m->buf = buf;
	m->size = size;
	m->pos = 0;
	f = fopencookie(m, "r", io);
	if (!f)
		free(m);
	return f;
}

/* for tests: read a buffer back through fmemopen, as libbpf does */
long es_memfile_read(const char *buf, size_t size, char *out, size_t out_size)
{
	FILE *f = fmemopen((void *)buf, size, "r");
	size_t n;

	if (!f)
		return -errno;
	n = fread(out, 1, out_size, f);
	fclose(f);
	return (long)n;
}
