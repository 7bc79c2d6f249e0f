/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The perf event array transport, for kernels without BPF ring buffers
 * (before 5.8): the objects built with ES_PERFBUF write each record into
 * the buffer of the CPU they run on. Each array is one "ring" of the
 * consumer (lifecycle, activity: kept apart, as with ring buffers, so a
 * flood of activity cannot drop lifecycle records), drained CPU buffer by
 * CPU buffer into the same batch through the same transcoder.
 *
 * Records in a CPU buffer are in order; across CPUs they are not, as they
 * are not across the two rings of the other transport either: consumers
 * order by ts_ns where it matters.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <linux/perf_event.h>
#include <bpf/libbpf.h>

#include "consumer.h"

struct es_perf_sample {
	struct perf_event_header header;
	uint32_t size;
	uint8_t data[];
};

struct es_perf_lost {
	struct perf_event_header header;
	uint64_t id;
	uint64_t lost;
};

static enum bpf_perf_event_ret es_perf_event(void *ctx, int cpu, struct perf_event_header *ev)
{
	struct es_perf *p = ctx;
	struct es_consumer *c = p->c;
	uint32_t size, hdr_size;
	uint64_t ts;

	(void)cpu;
	if (ev->type == PERF_RECORD_LOST && ev->size >= sizeof(struct es_perf_lost)) {
		p->lost += ((struct es_perf_lost *)ev)->lost;
		return LIBBPF_PERF_EVENT_CONT;
	}
	if (ev->type != PERF_RECORD_SAMPLE || ev->size < sizeof(struct es_perf_sample))
		return LIBBPF_PERF_EVENT_CONT;
	struct es_perf_sample *s = (struct es_perf_sample *)ev;
	size = s->size;
	if (size > ev->size - sizeof(*s))
		size = ev->size - sizeof(*s);
	/* the kernel pads raw samples to 8 bytes: the record's own header
	 * says how long it is (the transcoder checks it again) */
	if (size >= 16) {
		memcpy(&hdr_size, s->data + 12, 4);
		if (hdr_size >= 16 && hdr_size <= size)
			size = hdr_size;
	}
	/* the buffer is mapped read-only: the stamp is corrected on a copy */
	if (size > ES_PERF_REC)
		size = ES_PERF_REC;
	memcpy(c->perf_rec, s->data, size);
	if (size >= 8) {
		memcpy(&ts, c->perf_rec, 8);
		ts += (uint64_t)c->ts_offset;
		memcpy(c->perf_rec, &ts, 8);
	}
	/* stored even when it fills the batch; then stop this buffer */
	if (es_store(c, c->perf_rec, size) == ES_BATCH_FULL)
		return LIBBPF_PERF_EVENT_DONE;
	return LIBBPF_PERF_EVENT_CONT;
}

/* add a perf event array: pages per CPU buffer (a power of two); a CPU
 * buffer wakes the consumer once wakeup_bytes wait in it (the bounded poll
 * interval drains the rest, as with ring buffers) */
int es_perf_add(struct es_consumer *c, int map_fd, uint32_t pages, uint32_t wakeup_bytes)
{
	struct perf_event_attr attr;
	struct epoll_event ev;
	struct es_perf *p;
	int err;

	if (c->rb || c->nperf >= ES_MAX_PERF || !c->perf_rec)
		return -EINVAL;
	if (c->nperf == 0) {
		c->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (c->epfd < 0)
			return -errno;
	}
	memset(&attr, 0, sizeof(attr));
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_BPF_OUTPUT;
	attr.sample_type = PERF_SAMPLE_RAW;
	attr.sample_period = 1;
	attr.watermark = 1;
	attr.wakeup_watermark = wakeup_bytes;
	p = &c->perf[c->nperf];
	memset(p, 0, sizeof(*p));
	p->c = c;
	p->pb = perf_buffer__new_raw(map_fd, pages, &attr, es_perf_event, p, NULL);
	if (!p->pb) {
		err = -errno;
		goto fail;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u32 = c->nperf;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, perf_buffer__epoll_fd(p->pb), &ev) < 0) {
		err = -errno;
		perf_buffer__free(p->pb);
		p->pb = NULL;
		goto fail;
	}
	c->nperf++;
	return 0;
fail:
	if (c->nperf == 0) {
		close(c->epfd);
		c->epfd = -1;
	}
	return err;
}

static int64_t es_clock_lead(void)
{
	struct timespec boot, mono;

	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_BOOTTIME, &boot);
	return (int64_t)(boot.tv_sec - mono.tv_sec) * 1000000000 + (boot.tv_nsec - mono.tv_nsec);
}

int es_perf_consume(struct es_consumer *c, unsigned int idx)
{
	struct es_perf *p;
	size_t n, i, cpu;
	int err;

	if (idx >= c->nperf)
		return -EINVAL;
	p = &c->perf[idx];
	n = perf_buffer__buffer_cnt(p->pb);
	if (!n)
		return (int)c->count;
	c->ts_offset = es_clock_lead();
	/* a full batch stops at a CPU buffer: the next drain starts there, so
	 * no CPU's records wait behind the others' */
	for (i = 0; i < n; i++) {
		cpu = (p->next + i) % n;
		if (c->count >= c->max_count || c->len + c->reserve > c->cap) {
			p->next = (uint32_t)cpu;
			return (int)c->count;
		}
		err = perf_buffer__consume_buffer(p->pb, cpu);
		if (err < 0)
			return err;
	}
	p->next = (uint32_t)((p->next + 1) % n);
	return (int)c->count;
}

int es_epoll_fd(struct es_consumer *c)
{
	if (c->rb)
		return ring_buffer__epoll_fd(c->rb);
	return c->nperf ? c->epfd : -EINVAL;
}

/* free the transport, either kind; idempotent */
void es_transport_free(struct es_consumer *c)
{
	uint32_t i;

	if (c->rb) {
		ring_buffer__free(c->rb);
		c->rb = NULL;
	}
	for (i = 0; i < c->nperf; i++) {
		perf_buffer__free(c->perf[i].pb);
		c->perf[i].pb = NULL;
	}
	if (c->nperf) {
		close(c->epfd);
		c->epfd = -1;
		c->nperf = 0;
	}
}
