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
#include <string.h>

/* declared in the libbpf part of the cdef, hence outside the zone */
struct ring_buffer;
struct perf_buffer;

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
#define ES_INADDR 9 /* a __u8[16] IP address, as text by the family member at aux */
#define ES_BATCH_FULL -28
#define ES_MAX_TYPES 64

struct es_field {
	uint32_t kind;
	uint32_t offset;
	uint32_t size;
	uint32_t key_len;
	const char *key;
	uint32_t aux;  /* ES_INADDR: the offset of the record's __u16 family */
	uint32_t slot; /* built in C (build.c): where the Struct keeps the field */
};

struct es_record {
	uint32_t fixed_size;
	uint32_t nfields;
	uint32_t head_len;
	uint32_t cgroup_off;
	const char *head;
	const struct es_field *fields;
	/* built in C (build.c): the event class (a PyTypeObject *, which
	 * the events module keeps alive) and where its instances keep the
	 * fields the record has not */
	uint64_t cls;
	uint32_t slot_container;
	uint32_t slot_process;
	uint32_t slot_parent;
	uint32_t _pad;
};

/* cgroup id -> container id, msgpack-encoded; id 0 marks a free slot */
struct es_cgroup_slot {
	uint64_t id;
	uint32_t len;
	uint8_t enc[68];
};
#define ES_CGROUP_SLOTS 4096
#define ES_MAX_MISSES 64

/*
 * The process context cache: (pid, start time) -> the ProcessInfo objects
 * the process table made for the process (PyObject pointers, references the
 * table holds until it sets or deletes the key again), which context.c puts
 * on the decoded events. Open addressing, linear probing: start_ns 0 marks a
 * free slot (pid 0) or a deleted one (pid ES_PROC_DELETED).
 */
struct es_proc_slot {
	uint64_t start_ns;
	uint32_t pid;
	uint32_t ppid;	    /* the parent as the table knows it */
	uint64_t pstart_ns; /* its start time; 0: the process has no known parent */
	uint64_t since_ns;  /* info describes the process from then on (its exec), prev before */
	uint64_t info;
	uint64_t prev;	  /* 0 when there is none */
	uint64_t last_ns; /* the newest record that found it (least recently active first) */
};
#define ES_PROC_DELETED 0xffffffff
#define ES_MAX_CTX_MISSES 1024

/* what context.c puts on the batch's record at the same index (0: nothing) */
struct es_ctx_ref {
	uint64_t process;
	uint64_t parent;
};

/* one perf event array (one buffer per CPU), drained as one "ring" */
struct es_perf {
	struct perf_buffer *pb;
	struct es_consumer *c;
	uint64_t lost; /* records the kernel could not write: PERF_RECORD_LOST */
	uint32_t next; /* the CPU buffer to drain first next time */
	uint32_t _pad;
};
#define ES_MAX_PERF 2
#define ES_PERF_REC 65536

struct es_consumer {
	/* the transport: BPF ring buffers (rb), or perf event arrays (perf,
	 * nperf of them, waited on together through epfd) */
	struct ring_buffer *rb;
	struct es_perf perf[ES_MAX_PERF];
	uint32_t nperf;
	int epfd;
	/* added to every record's ts_ns: the perf objects stamp
	 * CLOCK_MONOTONIC, whose lag behind CLOCK_BOOTTIME is this */
	int64_t ts_offset;
	uint8_t *perf_rec; /* a record copied out of a perf buffer (which is read-only), ES_PERF_REC bytes */
	const struct es_record *records;
	uint32_t nrecords;
	/* 1: the batch holds the records themselves, which es_build() makes
	 * into the events (build.c); 0: msgpack for a msgspec decode */
	uint32_t build;
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
	/* the process context, all zero when it is off */
	struct es_proc_slot *procs;
	uint32_t proc_slots;	 /* a power of two */
	uint32_t proc_used;	 /* slots not free: live and deleted */
	struct es_ctx_ref *refs; /* max_count of them */
	uint32_t ctx_on;	 /* look records up (the activity ring's phase) */
	uint32_t ctx_start_off;	 /* struct task_ctx's members, from its cgroup_id */
	uint32_t ctx_pid_off;
	uint32_t ctx_ppid_off;
	uint32_t nctx_misses;  /* records the context is missing for */
	uint32_t ctx_overflow; /* more than ES_MAX_CTX_MISSES of them: look at every record */
	uint64_t ctx_learn; /* record types (a bit each) handed to Python as misses too: the table learns from them */
	uint32_t ctx_misses[ES_MAX_CTX_MISSES];
};

/* heap.c */
void es_release_heap(void);

/* log.c */
void es_route_libbpf_log(void);
void es_log_debug(int on);

/* ring.c */
struct ring_buffer *es_ring_new(struct es_consumer *c, int map_fd);
int es_ring_add(struct es_consumer *c, int map_fd);
int es_poll(struct es_consumer *c, int timeout_ms);
int es_consume(struct es_consumer *c);

/* perf.c */
int es_perf_add(struct es_consumer *c, int map_fd, uint32_t pages, uint32_t wakeup_bytes);
void es_transport_free(struct es_consumer *c);
int es_epoll_fd(struct es_consumer *c);

/* transcode.c */
int es_transcode(struct es_consumer *c, const void *data, size_t size);
void es_batch_begin(struct es_consumer *c);
int es_cgroup_set(struct es_consumer *c, uint64_t id, const uint8_t *enc, uint32_t len);
void es_cgroup_clear(struct es_consumer *c);
size_t es_batch_end(struct es_consumer *c);
int es_proc_set(struct es_consumer *c, uint32_t pid, uint64_t start_ns, uint32_t ppid, uint64_t pstart_ns,
		uint64_t since_ns, uint64_t info, uint64_t prev);
int es_proc_del(struct es_consumer *c, uint32_t pid, uint64_t start_ns);
uint64_t es_proc_last(struct es_consumer *c, uint32_t pid, uint64_t start_ns);
void es_proc_move(struct es_consumer *c, struct es_proc_slot *slots, uint32_t nslots);

/* context.c */
int es_wait(struct es_consumer *c, int timeout_ms);
int es_consume_ring(struct es_consumer *c, unsigned int idx);

/* fmemopen.c, for tests */
long es_memfile_read(const char *buf, size_t size, char *out, size_t out_size);
/* cdef-end */

/*
 * context.c: put the context the transcoder found on the events of the
 * batch just decoded. Called through ctypes (a PyObject cannot cross cffi),
 * with the GIL held, right after the decode, before the process table
 * changes.
 */
#ifdef Py_PYTHON_H
int es_attach(struct es_consumer *c, PyObject *batch, PyObject *base, Py_ssize_t off_process, Py_ssize_t off_parent);
/* build.c: the events of the batch just drained (in build mode), a new
 * list; NULL with a Python exception set */
PyObject *es_build(struct es_consumer *c);
#endif

/* Between the C files only; hidden so that nothing outside the extension binds to them. */
#define ES_HIDDEN __attribute__((visibility("hidden")))

/* perf.c: drain one perf event array into the batch (see es_consume_ring) */
ES_HIDDEN int es_perf_consume(struct es_consumer *c, unsigned int idx);

/* store one record in the batch; ES_BATCH_FULL once the batch is full */
ES_HIDDEN int es_store(struct es_consumer *c, const void *data, size_t size);

/* a record's member of size bytes, as it is in memory (unaligned) */
static inline uint64_t es_load_uint(const uint8_t *p, uint32_t size)
{
	uint8_t v8;
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;

	switch (size) {
	case 1:
		memcpy(&v8, p, 1);
		return v8;
	case 2:
		memcpy(&v16, p, 2);
		return v16;
	case 4:
		memcpy(&v32, p, 4);
		return v32;
	default:
		memcpy(&v64, p, 8);
		return v64;
	}
}

static inline int64_t es_load_int(const uint8_t *p, uint32_t size)
{
	int32_t v32;
	int64_t v64;

	if (size == 4) {
		memcpy(&v32, p, 4);
		return v32;
	}
	memcpy(&v64, p, 8);
	return v64;
}

/* transcode.c, shared with build.c */
ES_HIDDEN uint32_t es_inaddr_text(char *out, const uint8_t *rec, const struct es_field *f);
/* the cgroup cache's entry for id, or NULL (noted as a miss for Python) */
ES_HIDDEN const struct es_cgroup_slot *es_cgroup_find(struct es_consumer *c, uint64_t id);
/* check a record against its table: 0 when it can be transcoded or built
 * (its tails fit, its strings are UTF-8), 1 when it goes raw; *rsize is
 * its size as its header says */
ES_HIDDEN int es_check_record(const struct es_consumer *c, const uint8_t *rec, uint32_t size, uint32_t *rsize);
/* a build-mode batch entry: the record follows, the next entry at the
 * next multiple of 8 */
struct es_entry {
	uint32_t size;
	uint32_t raw; /* 1: the record failed es_check_record, made a bytes object */
};

/*
 * Defined by cffi in the generated module, from the cdef's
 * extern "Python+C" declaration, and implemented in Python by _ffi._es_log.
 */
ES_HIDDEN void _es_log(int level, const char *msg);

#endif /* EBPFSENSOR_CONSUMER_H */
