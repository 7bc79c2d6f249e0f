/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The consumer's side of libbpf's ring_buffer: libbpf calls es_sample() for
 * every record, which stores it in the batch (see transcode.c), so a poll
 * fills a whole batch without returning to Python.
 */
#include <bpf/libbpf.h>

#include "consumer.h"

static int es_sample(void *ctx, void *data, size_t size)
{
	/* libbpf has already consumed this record: it must be stored, so
	 * "full" is only ever reported after storing one */
	struct es_consumer *c = ctx;

	return es_store(c, data, size);
}

struct ring_buffer *es_ring_new(struct es_consumer *c, int map_fd)
{
	return ring_buffer__new(map_fd, es_sample, c, NULL);
}

int es_ring_add(struct es_consumer *c, int map_fd)
{
	return ring_buffer__add(c->rb, map_fd, es_sample, c);
}

/* wait up to timeout_ms for a wakeup, then drain every ring: records are
 * submitted without wakeups, so a ring may hold data without having signalled */
int es_poll(struct es_consumer *c, int timeout_ms)
{
	int err = 0;
	uint32_t i;

	if (c->nperf) {
		err = es_wait(c, timeout_ms);
		for (i = 0; err >= 0 && i < c->nperf; i++)
			err = es_perf_consume(c, i);
		return err < 0 ? err : (int)c->count;
	}
	if (timeout_ms != 0)
		err = ring_buffer__poll(c->rb, timeout_ms);
	if (err >= 0 && c->count < c->max_count && c->len + c->reserve <= c->cap)
		err = ring_buffer__consume(c->rb);
	if (err == ES_BATCH_FULL || err >= 0)
		return (int)c->count;
	return err;
}

int es_consume(struct es_consumer *c)
{
	return es_poll(c, 0);
}
