/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The workloads `ebpfsensor diagnostic overhead` and the bench time: loops of
 * monitored syscalls, in C because a Python loop costs more than the syscalls
 * it would measure. build_ext.py feeds the cdef zone to cffi.
 */
#ifndef EBPFSENSOR_LOOP_H
#define EBPFSENSOR_LOOP_H

#include <stdint.h>

/* cdef-begin */
/* the operations: openat(O_RDONLY)+close of one file; rename of one file back
 * and forth between two names; fork, exec of a program, wait for it;
 * openat(O_WRONLY)+close of one file (an open with write intent) */
#define ES_LOOP_OPEN 1
#define ES_LOOP_RENAME 2
#define ES_LOOP_EXEC 3
#define ES_LOOP_OPEN_WRITE 4

struct es_loop {
	int32_t op;	  /* ES_LOOP_* */
	int32_t err;	  /* out: errno of the first failure; 0 */
	const char *dir;  /* the open and rename files are made in it */
	const char *exe;  /* what fork+exec runs (an absolute path) */
	uint64_t max_ops; /* stop after so many operations; 0: no limit */
	uint64_t max_ns;  /* or once so long has passed; 0: no limit */
	uint64_t ops;	  /* out: operations done */
	uint64_t ns;	  /* out: the time they took, CLOCK_MONOTONIC */
	uint64_t cpu_ns;  /* out: the CPU time they took: this process's and its children's */
};

int es_loop_run(struct es_loop *l);
/* cdef-end */

#endif
