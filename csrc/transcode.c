/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The record transcoder. Each record is transcoded into msgpack (a map per
 * record, keyed by field name, tagged with "kind") appended to one batch
 * buffer, which Python decodes with a single msgspec call: no Python code runs
 * per record. A record that is malformed, or whose strings are not valid
 * UTF-8, is passed on whole as a msgpack bin for the Python decoder to handle
 * (faithfully or as an error).
 */
#include <string.h>
#include <sys/socket.h>

#include "consumer.h"
#include "msgpack.h"
#include "utf8.h"

/* dotted decimal of 4 bytes; returns the length */
static uint32_t es_ip4_text(char *out, const uint8_t *a)
{
	char *p = out;
	int i;

	for (i = 0; i < 4; i++) {
		if (a[i] >= 100)
			*p++ = (char)('0' + a[i] / 100);
		if (a[i] >= 10)
			*p++ = (char)('0' + a[i] / 10 % 10);
		*p++ = (char)('0' + a[i] % 10);
		if (i < 3)
			*p++ = '.';
	}
	return (uint32_t)(p - out);
}

/*
 * RFC 5952 text of 16 bytes: lowercase hex groups without leading zeros,
 * the longest run of two or more zero groups (the first of equal ones) as
 * "::", and an IPv4-mapped address as ::ffff:a.b.c.d (its section 5). It
 * is what Python's ipaddress prints (3.13 and later for a mapped one), so
 * the text and the address parsed back from it agree.
 */
static uint32_t es_ip6_text(char *out, const uint8_t *a)
{
	static const char hex[] = "0123456789abcdef";
	uint16_t w[8];
	int i, best = -1, best_len = 1, run = 0;
	char *p = out;

	for (i = 0; i < 8; i++)
		w[i] = (uint16_t)(a[2 * i] << 8 | a[2 * i + 1]);
	if (!(w[0] | w[1] | w[2] | w[3] | w[4]) && w[5] == 0xffff) {
		memcpy(p, "::ffff:", 7);
		return 7 + es_ip4_text(p + 7, a + 12);
	}
	for (i = 0; i < 8; i++) {
		run = w[i] ? 0 : run + 1;
		if (run > best_len) {
			best_len = run;
			best = i - run + 1;
		}
	}
	for (i = 0; i < 8; i++) {
		uint16_t v = w[i];

		if (i == best) {
			*p++ = ':';
			*p++ = ':';
			i += best_len - 1;
			continue;
		}
		if (i && i != best + best_len)
			*p++ = ':';
		if (v >= 0x1000)
			*p++ = hex[v >> 12];
		if (v >= 0x100)
			*p++ = hex[v >> 8 & 0xf];
		if (v >= 0x10)
			*p++ = hex[v >> 4 & 0xf];
		*p++ = hex[v & 0xf];
	}
	return (uint32_t)(p - out);
}

/* an address member as text by its record's family (out holds 48 bytes):
 * "" for families other than IPv4 and IPv6; returns the length */
uint32_t es_inaddr_text(char *out, const uint8_t *rec, const struct es_field *f)
{
	uint16_t family;

	memcpy(&family, rec + f->aux, 2);
	if (family == AF_INET)
		return es_ip4_text(out, rec + f->offset);
	if (family == AF_INET6)
		return es_ip6_text(out, rec + f->offset);
	return 0;
}

static uint8_t *es_put_inaddr(uint8_t *p, const uint8_t *rec, const struct es_field *f)
{
	char text[48];

	return es_put_str(p, text, es_inaddr_text(text, rec, f));
}

/* a tail string without its trailing NULs */
static uint32_t es_trim(const uint8_t *s, uint32_t n)
{
	while (n && s[n - 1] == 0)
		n--;
	return n;
}

/* the most a record's bytes take in the batch besides themselves: a
 * msgpack bin header, or a build-mode entry's header and padding */
static inline size_t es_raw_room(const struct es_consumer *c)
{
	return c->build ? sizeof(struct es_entry) + 8 : 8;
}

/* the next entry of a build-mode batch: 8-byte aligned */
static inline size_t es_entry_next(size_t len, uint32_t size)
{
	return (len + sizeof(struct es_entry) + size + 7) & ~(size_t)7;
}

/* Append the record as it is, to be built as is (build mode) or as bytes
 * for the Python decoder (raw). The room was checked by es_transcode's
 * caller (c->reserve, or the record's size). */
static void es_put_entry(struct es_consumer *c, const void *data, uint32_t size, uint32_t raw)
{
	struct es_entry e = { .size = size, .raw = raw };

	memcpy(c->buf + c->len, &e, sizeof(e));
	memcpy(c->buf + c->len + sizeof(e), data, size);
	c->len = es_entry_next(c->len, size);
}

/* Append the record as a msgpack bin: the Python decoder takes over. */
static void es_put_raw(struct es_consumer *c, const void *data, uint32_t size)
{
	uint8_t *p = c->buf + c->len;

	/* a record larger than what is left of the batch goes as its header
	 * alone, which the decoder counts as undecodable: never past the buffer */
	if (c->len + size + es_raw_room(c) > c->cap && size > 16)
		size = 16;
	c->raw++;
	if (c->build) {
		es_put_entry(c, data, size, 1);
		return;
	}
	p = es_put_strhdr(p, size, 0, 0xc4, 0xc5, 0xc6);
	memcpy(p, data, size);
	c->len = (size_t)(p + size - c->buf);
}

static inline uint32_t es_cgroup_hash(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return (uint32_t)id & (ES_CGROUP_SLOTS - 1);
}

/* the cache's entry for a cgroup (its container id), or NULL and a note for
 * Python to resolve it (cgroup paths are read from the filesystem, once) */
const struct es_cgroup_slot *es_cgroup_find(struct es_consumer *c, uint64_t id)
{
	uint32_t i, h = es_cgroup_hash(id);

	if (id == 0) /* no cgroup (v1 only): no container */
		return NULL;
	for (i = 0; i < ES_CGROUP_SLOTS; i++) {
		const struct es_cgroup_slot *s = &c->cgroups[(h + i) & (ES_CGROUP_SLOTS - 1)];

		if (s->id == id)
			return s;
		if (s->id == 0)
			break;
	}
	for (i = 0; i < c->nmisses; i++)
		if (c->misses[i] == id)
			break;
	if (i == c->nmisses && c->nmisses < ES_MAX_MISSES)
		c->misses[c->nmisses++] = id;
	return NULL;
}

static uint8_t *es_put_container(struct es_consumer *c, uint8_t *p, uint64_t id)
{
	const struct es_cgroup_slot *s = es_cgroup_find(c, id);

	if (!s)
		return es_put_u8(p, 0xa0);
	memcpy(p, s->enc, s->len);
	return p + s->len;
}

int es_cgroup_set(struct es_consumer *c, uint64_t id, const uint8_t *enc, uint32_t len)
{
	uint32_t i, h = es_cgroup_hash(id);

	if (!id || len > sizeof(c->cgroups[0].enc) || c->ncgroups >= ES_CGROUP_SLOTS / 2)
		return -1;
	for (i = 0; i < ES_CGROUP_SLOTS; i++) {
		struct es_cgroup_slot *s = &c->cgroups[(h + i) & (ES_CGROUP_SLOTS - 1)];

		if (s->id == 0 || s->id == id) {
			c->ncgroups += s->id == 0;
			s->id = id;
			s->len = len;
			memcpy(s->enc, enc, len);
			return 0;
		}
	}
	return -1;
}

void es_cgroup_clear(struct es_consumer *c)
{
	memset(c->cgroups, 0, sizeof(struct es_cgroup_slot) * ES_CGROUP_SLOTS);
	c->ncgroups = 0;
}

static inline uint32_t es_proc_hash(uint32_t pid, uint64_t start_ns)
{
	uint64_t h = start_ns ^ ((uint64_t)pid << 32 | pid);

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (uint32_t)h;
}

/* the slot of a process, or NULL; never one for start time 0 (no process
 * the table knows starts at 0: it marks free slots) */
static struct es_proc_slot *es_proc_find(const struct es_consumer *c, uint32_t pid, uint64_t start_ns)
{
	uint32_t i, mask = c->proc_slots - 1, h = es_proc_hash(pid, start_ns);

	if (!start_ns || !c->proc_slots)
		return NULL;
	for (i = 0; i < c->proc_slots; i++) {
		struct es_proc_slot *s = &c->procs[(h + i) & mask];

		if (s->start_ns == start_ns && s->pid == pid)
			return s;
		if (!s->start_ns && !s->pid)
			return NULL;
	}
	return NULL;
}

/* 1 for a process new to the table, 0 for one it had, -1 when the table is
 * seven eighths used (deleted slots included): the caller moves it to a
 * larger one (es_proc_move) and sets again. Linear probing stays short
 * enough there for the records that find their process. */
int es_proc_set(struct es_consumer *c, uint32_t pid, uint64_t start_ns, uint32_t ppid, uint64_t pstart_ns,
		uint64_t since_ns, uint64_t info, uint64_t prev)
{
	uint32_t i, mask = c->proc_slots - 1, h = es_proc_hash(pid, start_ns);
	struct es_proc_slot *s = es_proc_find(c, pid, start_ns);
	int fresh = !s;

	if (!start_ns || !c->proc_slots)
		return -1;
	if (!s) {
		if ((uint64_t)(c->proc_used + 1) * 8 > (uint64_t)c->proc_slots * 7)
			return -1;
		/* reuse the first deleted or free slot on the probe path */
		for (i = 0; i < c->proc_slots; i++) {
			s = &c->procs[(h + i) & mask];
			if (!s->start_ns)
				break;
		}
		if (i == c->proc_slots)
			return -1;
		c->proc_used += s->pid == 0;
		s->last_ns = 0;
	}
	s->start_ns = start_ns;
	s->pid = pid;
	s->ppid = ppid;
	s->pstart_ns = pstart_ns;
	s->since_ns = since_ns;
	s->info = info;
	s->prev = prev;
	return fresh;
}

int es_proc_del(struct es_consumer *c, uint32_t pid, uint64_t start_ns)
{
	struct es_proc_slot *s = es_proc_find(c, pid, start_ns);

	if (!s)
		return -1;
	memset(s, 0, sizeof(*s));
	s->pid = ES_PROC_DELETED;
	return 0;
}

uint64_t es_proc_last(struct es_consumer *c, uint32_t pid, uint64_t start_ns)
{
	struct es_proc_slot *s = es_proc_find(c, pid, start_ns);

	return s ? s->last_ns : 0;
}

/* move every live slot into a new table of nslots (a power of two), which
 * replaces the consumer's; deleted slots are left behind */
void es_proc_move(struct es_consumer *c, struct es_proc_slot *slots, uint32_t nslots)
{
	struct es_proc_slot *old = c->procs;
	uint32_t i, j, n = c->proc_slots, mask = nslots - 1;

	memset(slots, 0, sizeof(*slots) * nslots);
	c->procs = slots;
	c->proc_slots = nslots;
	c->proc_used = 0;
	for (i = 0; i < n; i++) {
		if (!old[i].start_ns)
			continue;
		for (j = es_proc_hash(old[i].pid, old[i].start_ns);; j++) {
			if (!slots[j & mask].start_ns) {
				slots[j & mask] = old[i];
				c->proc_used++;
				break;
			}
		}
	}
}

/* the process's view at ts: the image before its exec for a record older
 * than the exec */
static inline uint64_t es_proc_at(const struct es_proc_slot *s, uint64_t ts)
{
	return ts < s->since_ns && s->prev ? s->prev : s->info;
}

/*
 * Look the record's process and parent up, for context.c to put on the
 * event at index i; note the record when either is missing (the table
 * learns it in Python). The record's ppid is the kernel's at the event:
 * when it is not the parent the table has, the process was reparented.
 */
static void es_context(struct es_consumer *c, const uint8_t *rec, uint32_t i)
{
	struct es_ctx_ref *ref = &c->refs[i];
	const struct es_record *r;
	struct es_proc_slot *s, *p;
	uint64_t ts, start;
	uint32_t type, pid, ppid, miss = 1;

	ref->process = ref->parent = 0;
	if (rec) {
		memcpy(&type, rec + 8, 4);
		r = &c->records[type];
		memcpy(&ts, rec, 8);
		memcpy(&start, rec + r->cgroup_off + c->ctx_start_off, 8);
		memcpy(&pid, rec + r->cgroup_off + c->ctx_pid_off, 4);
		memcpy(&ppid, rec + r->cgroup_off + c->ctx_ppid_off, 4);
		/* no process (a record made for a test): nothing to find */
		if (!start)
			return;
		s = es_proc_find(c, pid, start);
		if (s) {
			s->last_ns = ts;
			ref->process = es_proc_at(s, ts);
			if (s->ppid == ppid) {
				p = s->pstart_ns ? es_proc_find(c, ppid, s->pstart_ns) : NULL;
				if (p)
					ref->parent = es_proc_at(p, ts);
				/* a parent the table knows it cannot name is not missed */
				miss = s->pstart_ns && !p;
			}
		}
		if (type < 64 && (c->ctx_learn >> type & 1))
			miss = 1;
	}
	if (!miss)
		return;
	if (c->nctx_misses < ES_MAX_CTX_MISSES)
		c->ctx_misses[c->nctx_misses++] = i;
	else
		c->ctx_overflow = 1;
}

int es_check_record(const struct es_consumer *c, const uint8_t *rec, uint32_t size, uint32_t *rsize)
{
	const struct es_record *r;
	const struct es_field *f;
	uint32_t type, tail, i;

	/* the reserve holds the transcoded form of a record of at most
	 * MAX_RECORD_LEN ((reserve - 4096) / 2): a larger one goes raw */
	if ((size_t)size * 2 + 4096 > c->reserve)
		return 1;
	if (size < 16)
		return 1;
	memcpy(&type, rec + 8, 4);
	memcpy(rsize, rec + 12, 4);
	if (type >= c->nrecords || !c->records[type].nfields)
		return 1;
	r = &c->records[type];
	if (*rsize > size || *rsize < r->fixed_size)
		return 1;
	size = *rsize;

	/* first pass: check tails fit and strings are UTF-8, so the second
	 * pass cannot fail half-way through */
	tail = r->fixed_size;
	for (i = 0; i < r->nfields; i++) {
		f = &r->fields[i];
		if (f->kind == ES_CSTR) {
			const uint8_t *s = rec + f->offset;
			if (!es_utf8_ok(s, strnlen((const char *)s, f->size)))
				return 1;
		} else if (f->kind == ES_TAIL_STR || f->kind == ES_TAIL_STRLIST) {
			uint32_t n = (uint32_t)es_load_uint(rec + f->offset, 4);
			if (n > size - tail)
				return 1;
			/* argv items are separated by NULs, which UTF-8 allows */
			if (!es_utf8_ok(rec + tail, n))
				return 1;
			tail += n;
		}
	}
	return 0;
}

/* 0: transcoded; 1: needs the Python decoder (bad UTF-8 or malformed) */
static int es_put_record(struct es_consumer *c, const uint8_t *rec, uint32_t size)
{
	const struct es_record *r;
	const struct es_field *f;
	uint32_t type, tail, i;
	uint8_t *p = c->buf + c->len;

	if (es_check_record(c, rec, size, &size))
		return 1;
	memcpy(&type, rec + 8, 4);
	r = &c->records[type];
	if (c->build) {
		/* checked: es_build makes the event from the record itself */
		es_put_entry(c, rec, size, 0);
		if (type < ES_MAX_TYPES)
			c->delivered[type]++;
		return 0;
	}

	/* "kind" and "container_id" come first, then the record's fields */
	p = es_put_strhdr(p, r->nfields + 2, 0x80, 0, 0xde, 0xdf);
	memcpy(p, r->head, r->head_len);
	p += r->head_len;
	p = es_put_container(c, p, es_load_uint(rec + r->cgroup_off, 8));
	tail = r->fixed_size;
	for (i = 0; i < r->nfields; i++) {
		f = &r->fields[i];
		memcpy(p, f->key, f->key_len);
		p += f->key_len;
		switch (f->kind) {
		case ES_U:
			p = es_put_uint(p, es_load_uint(rec + f->offset, f->size));
			break;
		case ES_S:
			p = es_put_int(p, es_load_int(rec + f->offset, f->size));
			break;
		case ES_BOOL:
			p = es_put_u8(p, rec[f->offset] ? 0xc3 : 0xc2);
			break;
		case ES_OPTBOOL:
			/* 0 false, 1 true, anything else unknown (nil) */
			p = es_put_u8(p, rec[f->offset] == 0 ? 0xc2 : rec[f->offset] == 1 ? 0xc3 : 0xc0);
			break;
		case ES_CSTR:
			p = es_put_str(p, (const char *)rec + f->offset,
				       (uint32_t)strnlen((const char *)rec + f->offset, f->size));
			break;
		case ES_INADDR:
			p = es_put_inaddr(p, rec, f);
			break;
		case ES_BYTES:
			/* a fixed __u8 array (an address): a msgpack bin, all of it */
			p = es_put_strhdr(p, f->size, 0, 0xc4, 0xc5, 0xc6);
			memcpy(p, rec + f->offset, f->size);
			p += f->size;
			break;
		case ES_TAIL_STR: {
			uint32_t n = (uint32_t)es_load_uint(rec + f->offset, 4);
			p = es_put_str(p, (const char *)rec + tail, es_trim(rec + tail, n));
			tail += n;
			break;
		}
		case ES_TAIL_STRLIST: {
			/* NUL-separated items, the last one NUL-terminated unless
			 * truncated: drop one terminator, keep empty items */
			uint32_t n = (uint32_t)es_load_uint(rec + f->offset, 4);
			uint32_t len = n && rec[tail + n - 1] == 0 ? n - 1 : n;
			uint32_t items = 0, j, start;

			for (j = 0; j < len; j++)
				items += rec[tail + j] == 0;
			if (n)
				items++;
			p = es_put_strhdr(p, items, 0x90, 0, 0xdc, 0xdd);
			for (j = 0, start = 0; n && j <= len; j++) {
				if (j == len || rec[tail + j] == 0) {
					p = es_put_str(p, (const char *)rec + tail + start, j - start);
					start = j + 1;
				}
			}
			tail += n;
			break;
		}
		}
	}
	c->len = (size_t)(p - c->buf);
	if (type < ES_MAX_TYPES)
		c->delivered[type]++;
	return 0;
}

/* there is room for the record: c->reserve is the most one record can
 * take, and "full" is reported as soon as less than that is left */
int es_store(struct es_consumer *c, const void *data, size_t size)
{
	int raw = es_put_record(c, data, (uint32_t)size);

	if (raw)
		es_put_raw(c, data, (uint32_t)size);
	/* a raw record is decoded in Python, which also finds its context */
	if (c->ctx_on)
		es_context(c, raw ? NULL : data, c->count);
	c->count++;
	if (c->count >= c->max_count || c->len + c->reserve > c->cap)
		return ES_BATCH_FULL;
	return 0;
}

/* c->reserve is the most one record can take, computed in Python */
int es_transcode(struct es_consumer *c, const void *data, size_t size)
{
	if (c->len + c->reserve > c->cap || c->len + size + es_raw_room(c) > c->cap)
		return ES_BATCH_FULL;
	return es_store(c, data, size);
}

/* a batch is a msgpack array32 whose count is patched in at the end; in
 * build mode, entries from offset 8 */
void es_batch_begin(struct es_consumer *c)
{
	c->len = c->build ? 8 : 5;
	c->count = 0;
	c->nctx_misses = 0;
	c->ctx_overflow = 0;
}

size_t es_batch_end(struct es_consumer *c)
{
	c->buf[0] = 0xdd;
	es_put_be32(c->buf + 1, c->count);
	return c->len;
}
