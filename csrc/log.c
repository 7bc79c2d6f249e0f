/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libbpf's messages, formatted here and handed to Python's logging (logger
 * "ebpfsensor.libbpf") instead of being written to stderr behind the
 * caller's back.
 */
#include <stdarg.h>
#include <stdio.h>

#include <bpf/libbpf.h>

#include "consumer.h"

/* libbpf's debug messages (thousands per object load: every relocation)
 * reach Python only when its logger wants them: each costs a call into
 * Python with the GIL */
static int es_debug;

void es_log_debug(int on)
{
	es_debug = on;
}

static int es_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char msg[1024];

	if (level == LIBBPF_DEBUG && !es_debug)
		return 0;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	_es_log((int)level, msg);
	return 0;
}

void es_route_libbpf_log(void)
{
	libbpf_set_print(es_print);
}
