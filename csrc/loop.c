/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Timed loops of one monitored operation (see loop.h). Called from a small
 * process of its own, never from the sensor's: a fork copies the caller's
 * page tables, and the sensor's process is large.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

/* how often the clock is read: often enough to stop near max_ns, seldom
 * enough not to add to a cheap operation */
#define CHECK_EVERY 32

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* user and system time of this process and of its children waited for: the
 * work of a loop wherever the scheduler put it, and none of another
 * process's that shared the CPU */
static uint64_t cpu_ns(void)
{
	struct timespec t;
	struct rusage r;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	getrusage(RUSAGE_CHILDREN, &r);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec +
	       ((uint64_t)r.ru_utime.tv_sec + (uint64_t)r.ru_stime.tv_sec) * 1000000000ull +
	       ((uint64_t)r.ru_utime.tv_usec + (uint64_t)r.ru_stime.tv_usec) * 1000ull;
}

static int one_exec(const char *exe)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return errno;
	if (pid == 0) {
		execl(exe, exe, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return ECHILD;
	return 0;
}

int es_loop_run(struct es_loop *l)
{
	char a[4096], b[4096];
	uint64_t t0, c0, i;
	int fd;

	l->ops = 0;
	l->ns = 0;
	l->cpu_ns = 0;
	l->err = 0;
	if (l->op == ES_LOOP_EXEC) {
		if (!l->exe)
			return -EINVAL;
	} else if (l->op == ES_LOOP_OPEN || l->op == ES_LOOP_OPEN_WRITE || l->op == ES_LOOP_RENAME) {
		if ((size_t)snprintf(a, sizeof(a), "%s/a", l->dir) >= sizeof(a) ||
		    (size_t)snprintf(b, sizeof(b), "%s/b", l->dir) >= sizeof(b))
			return -ENAMETOOLONG;
		/* a previous odd number of renames left the file at b */
		unlink(b);
		fd = open(a, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		close(fd);
	} else {
		return -EINVAL;
	}
	c0 = cpu_ns();
	t0 = now_ns();
	for (i = 0; !l->max_ops || i < l->max_ops;) {
		if (l->op == ES_LOOP_OPEN || l->op == ES_LOOP_OPEN_WRITE) {
			fd = openat(AT_FDCWD, a, l->op == ES_LOOP_OPEN ? O_RDONLY : O_WRONLY);
			if (fd < 0) {
				l->err = errno;
				break;
			}
			close(fd);
		} else if (l->op == ES_LOOP_RENAME) {
			if (rename(i & 1 ? b : a, i & 1 ? a : b) < 0) {
				l->err = errno;
				break;
			}
		} else if ((l->err = one_exec(l->exe)) != 0) {
			break;
		}
		i++;
		if (l->max_ns && (l->op == ES_LOOP_EXEC || i % CHECK_EVERY == 0) && now_ns() - t0 >= l->max_ns)
			break;
	}
	l->ns = now_ns() - t0;
	l->cpu_ns = cpu_ns() - c0;
	l->ops = i;
	return l->err ? -l->err : 0;
}
