/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ring buffer consumer's tables, state and entry points, shared by the C
 * files of the extension and by Python: build_ext.py feeds the cdef zone to
 * cffi and the generated module #includes the whole file, so the C compiler
 * checks the same text.
 *
 * The field tables (struct es_record) are built in Python from cffi's view of
 * events.h and the msgspec Struct definitions, so no C code knows a record's
 * layout.
 */
#ifndef EBPFSENSOR_CONSUMER_H
#define EBPFSENSOR_CONSUMER_H

#include <stddef.h>
#include <stdint.h>

/* declared in the libbpf part of the cdef, hence outside the zone */
struct ring_buffer;

/* cdef-begin */
/* field kinds: how es_put_record() encodes a member */
#define ES_U 1
#define ES_S 2
#define ES_BOOL 3
#define ES_CSTR 4
#define ES_TAIL_STR 5
#define ES_TAIL_STRLIST 6
#define ES_BYTES 7
#define ES_OPTBOOL 8
#define ES_BATCH_FULL -28
#define ES_MAX_TYPES 64

struct es_field {
	uint32_t kind;
	uint32_t offset;
	uint32_t size;
	uint32_t key_len;
	const char *key;
};

struct es_record {
	uint32_t fixed_size;
	uint32_t nfields;
	uint32_t head_len;
	uint32_t cgroup_off;
	const char *head;
	const struct es_field *fields;
};

/* cgroup id -> container id, msgpack-encoded; id 0 marks a free slot */
struct es_cgroup_slot {
	uint64_t id;
	uint32_t len;
	uint8_t enc[68];
};
#define ES_CGROUP_SLOTS 4096
#define ES_MAX_MISSES 64

struct es_consumer {
	struct ring_buffer *rb;
	const struct es_record *records;
	uint32_t nrecords;
	uint32_t _pad;
	uint8_t *buf;
	size_t cap;
	size_t len;
	size_t reserve;
	uint32_t count;
	uint32_t max_count;
	uint64_t delivered[ES_MAX_TYPES];
	uint64_t raw;
	struct es_cgroup_slot *cgroups;
	uint32_t ncgroups;
	uint32_t nmisses;
	uint64_t misses[ES_MAX_MISSES];
};

/* log.c */
void es_route_libbpf_log(void);

/* ring.c */
struct ring_buffer *es_ring_new(struct es_consumer *c, int map_fd);
int es_ring_add(struct es_consumer *c, int map_fd);
int es_poll(struct es_consumer *c, int timeout_ms);
int es_consume(struct es_consumer *c);

/* transcode.c */
int es_transcode(struct es_consumer *c, const void *data, size_t size);
void es_batch_begin(struct es_consumer *c);
int es_cgroup_set(struct es_consumer *c, uint64_t id, const uint8_t *enc, uint32_t len);
void es_cgroup_clear(struct es_consumer *c);
size_t es_batch_end(struct es_consumer *c);

/* fmemopen.c, for tests */
long es_memfile_read(const char *buf, size_t size, char *out, size_t out_size);
/* cdef-end */

/* Between the C files only; hidden so that nothing outside the extension binds to them. */
#define ES_HIDDEN __attribute__((visibility("hidden")))

/* store one record in the batch; ES_BATCH_FULL once the batch is full */
ES_HIDDEN int es_store(struct es_consumer *c, const void *data, size_t size);

/*
 * Defined by cffi in the generated module, from the cdef's
 * extern "Python+C" declaration, and implemented in Python by _ffi._es_log.
 */
ES_HIDDEN void _es_log(int level, const char *msg);

#endif /* EBPFSENSOR_CONSUMER_H */
