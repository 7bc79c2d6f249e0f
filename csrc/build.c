/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The events built in C. In build mode the transcoder checks each record
 * (es_check_record: tails fit, strings are UTF-8) and copies it into the
 * batch as it is; es_build() then makes the batch's events directly, with
 * the GIL held: an instance of the record's event class from the class's
 * own allocator, every field stored in the slot where msgspec's decoder
 * would store it. No msgpack is written or parsed, and nothing runs per
 * field but the making of its value. A value whose bytes are those of the
 * same field of the batch's previous record of the same type is that
 * record's event's object (numbers and strings are immutable; a list is a
 * new list of the same strings): records of one batch often share their
 * namespaces, credentials, comm, cwd or image, and a value shared costs a
 * comparison instead of an allocation, in the batch and in memory.
 *
 * Where a class keeps each field is found in Python on real instances
 * (sources/ebpf/ring.py, _Builder), which also checks the whole path on
 * every record type before it turns build mode on; a failed check leaves
 * the msgpack path in use. The classes are gc=False Structs (not tracked
 * by the garbage collector, as msgspec makes them), and none of their
 * fields is left unset: every slot of an instance is written here.
 *
 * Called through ctypes (PyDLL: the GIL is held, a PyObject crosses).
 */
#define Py_LIMITED_API 0x030B0000
#include <Python.h>
#include <string.h>

#include "consumer.h"

static inline void es_set(PyObject *obj, uint32_t slot, PyObject *value)
{
	*(PyObject **)((char *)obj + slot) = value;
}

static PyObject *es_strlist(const uint8_t *s, uint32_t n)
{
	/* NUL-separated items, the last one NUL-terminated unless truncated:
	 * drop one terminator, keep empty items (as the transcoder does) */
	uint32_t len = n && s[n - 1] == 0 ? n - 1 : n;
	uint32_t items = 0, j, start;
	Py_ssize_t k = 0;
	PyObject *list;

	for (j = 0; j < len; j++)
		items += s[j] == 0;
	if (n)
		items++;
	list = PyList_New(items);
	if (!list)
		return NULL;
	for (j = 0, start = 0; n && j <= len; j++) {
		if (j == len || s[j] == 0) {
			PyObject *item = PyUnicode_DecodeUTF8((const char *)s + start, j - start, NULL);

			if (!item || PyList_SetItem(list, k++, item) < 0) {
				Py_DECREF(list);
				return NULL;
			}
			start = j + 1;
		}
	}
	return list;
}

/* the value of one field, whose tail (if it is a tail field) starts at
 * tail; a new reference, or NULL with an exception set */
static PyObject *es_value(const uint8_t *rec, const struct es_field *f, uint32_t tail)
{
	switch (f->kind) {
	case ES_U:
		return PyLong_FromUnsignedLongLong(es_load_uint(rec + f->offset, f->size));
	case ES_S:
		return PyLong_FromLongLong(es_load_int(rec + f->offset, f->size));
	case ES_BOOL:
		return PyBool_FromLong(rec[f->offset] != 0);
	case ES_OPTBOOL:
		/* 0 false, 1 true, anything else unknown (None) */
		if (rec[f->offset] > 1)
			Py_RETURN_NONE;
		return PyBool_FromLong(rec[f->offset]);
	case ES_CSTR:
		return PyUnicode_DecodeUTF8((const char *)rec + f->offset,
					    (Py_ssize_t)strnlen((const char *)rec + f->offset, f->size), NULL);
	case ES_INADDR: {
		char text[48];

		return PyUnicode_DecodeUTF8(text, es_inaddr_text(text, rec, f), NULL);
	}
	case ES_BYTES:
		return PyBytes_FromStringAndSize((const char *)rec + f->offset, f->size);
	case ES_TAIL_STR: {
		uint32_t n = (uint32_t)es_load_uint(rec + f->offset, 4);
		const uint8_t *s = rec + tail;
		uint32_t len = n;

		while (len && s[len - 1] == 0)
			len--;
		return PyUnicode_DecodeUTF8((const char *)s, len, NULL);
	}
	case ES_TAIL_STRLIST: {
		return es_strlist(rec + tail, (uint32_t)es_load_uint(rec + f->offset, 4));
	}
	}
	PyErr_Format(PyExc_SystemError, "es_build: field kind %u", f->kind);
	return NULL;
}

/* the container id of a cgroup, from the cache's msgpack string (a fixstr
 * or a str8: at most 66 bytes); "" for none */
static PyObject *es_container(struct es_consumer *c, uint64_t id, PyObject *empty)
{
	const struct es_cgroup_slot *s = es_cgroup_find(c, id);

	if (s && s->len >= 1 && (s->enc[0] & 0xe0) == 0xa0 && (uint32_t)(s->enc[0] & 0x1f) + 1 <= s->len)
		return PyUnicode_DecodeUTF8((const char *)s->enc + 1, s->enc[0] & 0x1f, NULL);
	if (s && s->len >= 2 && s->enc[0] == 0xd9 && (uint32_t)s->enc[1] + 2 <= s->len)
		return PyUnicode_DecodeUTF8((const char *)s->enc + 2, s->enc[1], NULL);
	Py_INCREF(empty);
	return empty;
}

/* the previous record of a type in the batch, and its event (borrowed:
 * the batch's list holds it) */
struct es_prev {
	const uint8_t *rec;
	PyObject *ev;
};

/* the value of field f when it is the previous record's: a new reference
 * to the object its event has, or NULL (and no exception) when the bytes
 * differ. tail and ptail are where the two records' tails of f start. */
static PyObject *es_shared(const uint8_t *rec, const struct es_prev *prev, const struct es_field *f, uint32_t tail,
			   uint32_t ptail)
{
	PyObject *old = *(PyObject **)((char *)prev->ev + f->slot);
	uint32_t n;
	int same;

	switch (f->kind) {
	case ES_TAIL_STR:
	case ES_TAIL_STRLIST:
		n = (uint32_t)es_load_uint(rec + f->offset, 4);
		same = n == (uint32_t)es_load_uint(prev->rec + f->offset, 4) &&
		       !memcmp(rec + tail, prev->rec + ptail, n);
		break;
	case ES_INADDR:
		same = !memcmp(rec + f->offset, prev->rec + f->offset, f->size) &&
		       !memcmp(rec + f->aux, prev->rec + f->aux, 2);
		break;
	case ES_U:
	case ES_S:
	case ES_BOOL:
	case ES_OPTBOOL:
		/* at most 8 bytes: a load each rather than a call */
		same = es_load_uint(rec + f->offset, f->size) == es_load_uint(prev->rec + f->offset, f->size);
		break;
	default:
		same = !memcmp(rec + f->offset, prev->rec + f->offset, f->size);
	}
	if (!same || !old)
		return NULL;
	if (f->kind == ES_TAIL_STRLIST) {
		/* a list is mutable: a new one, of the same strings */
		Py_ssize_t i, len = PyList_Size(old);
		PyObject *list = len >= 0 ? PyList_New(len) : NULL;

		for (i = 0; list && i < len; i++) {
			PyObject *item = PyList_GetItem(old, i);

			Py_XINCREF(item);
			if (!item || PyList_SetItem(list, i, item) < 0) {
				Py_DECREF(list);
				list = NULL;
			}
		}
		if (!list)
			PyErr_Clear(); /* made anew by the caller, or failing there */
		return list;
	}
	Py_INCREF(old);
	return old;
}

/* the tail offsets past field f of a record (its length member) */
static inline void es_skip(const uint8_t *rec, const struct es_field *f, uint32_t *tail)
{
	if (f->kind == ES_TAIL_STR || f->kind == ES_TAIL_STRLIST)
		*tail += (uint32_t)es_load_uint(rec + f->offset, 4);
}

/* the event of a checked record; a new reference, or NULL with an
 * exception set. cid is the container id of cgroup *cid_of, reused while
 * the records come from the same cgroup. */
static PyObject *es_event(struct es_consumer *c, const uint8_t *rec, const struct es_prev *prev, PyObject *empty,
			  uint64_t *cid_of, PyObject **cid)
{
	const struct es_record *r;
	PyTypeObject *cls;
	allocfunc alloc;
	PyObject *ev, *v;
	uint32_t type, i, tail, ptail;
	uint64_t cgroup;

	memcpy(&type, rec + 8, 4);
	r = &c->records[type];
	cls = (PyTypeObject *)(uintptr_t)r->cls;
	alloc = (allocfunc)PyType_GetSlot(cls, Py_tp_alloc);
	if (!alloc)
		return NULL;
	/* zeroed: a failure below leaves slots NULL, which dealloc skips */
	ev = alloc(cls, 0);
	if (!ev)
		return NULL;
	tail = ptail = r->fixed_size;
	for (i = 0; i < r->nfields; i++) {
		const struct es_field *f = &r->fields[i];

		v = prev && prev->ev ? es_shared(rec, prev, f, tail, ptail) : NULL;
		if (!v)
			v = es_value(rec, f, tail);
		if (!v)
			goto fail;
		es_set(ev, f->slot, v);
		es_skip(rec, f, &tail);
		if (prev && prev->ev)
			es_skip(prev->rec, f, &ptail);
	}
	cgroup = es_load_uint(rec + r->cgroup_off, 8);
	if (!*cid || *cid_of != cgroup) {
		v = es_container(c, cgroup, empty);
		if (!v)
			goto fail;
		Py_XDECREF(*cid);
		*cid = v;
		*cid_of = cgroup;
	}
	Py_INCREF(*cid);
	es_set(ev, r->slot_container, *cid);
	Py_INCREF(Py_None);
	es_set(ev, r->slot_process, Py_None);
	Py_INCREF(Py_None);
	es_set(ev, r->slot_parent, Py_None);
	return ev;
fail:
	Py_DECREF(ev);
	return NULL;
}

static PyObject *es_build_batch(struct es_consumer *c);

PyObject *es_build(struct es_consumer *c)
{
	PyObject *list;
	int gc;

	if (!c->build) {
		PyErr_SetString(PyExc_ValueError, "es_build: the consumer is not in build mode");
		return NULL;
	}
	/* The collector waits for the end of the batch: the lists the events
	 * hold (argv) would start a collection every few hundred records,
	 * each looking at what the batch made so far, and at times at every
	 * object of the process. Once the batch is made, the next allocation
	 * starts the one collection its objects call for. */
	gc = PyGC_Disable();
	list = es_build_batch(c);
	if (gc)
		PyGC_Enable();
	return list;
}

static PyObject *es_build_batch(struct es_consumer *c)
{
	PyObject *list, *empty, *item, *cid = NULL;
	struct es_prev prev[ES_MAX_TYPES] = { 0 };
	uint64_t cid_of = 0;
	size_t pos = 8;
	uint32_t i;

	list = PyList_New(c->count);
	if (!list)
		return NULL;
	empty = PyUnicode_FromStringAndSize("", 0);
	if (!empty)
		goto fail;
	for (i = 0; i < c->count; i++) {
		struct es_entry e;
		const uint8_t *rec;

		if (pos + sizeof(e) > c->len) {
			PyErr_SetString(PyExc_SystemError, "es_build: the batch ends before its records");
			goto fail;
		}
		memcpy(&e, c->buf + pos, sizeof(e));
		rec = c->buf + pos + sizeof(e);
		if (e.raw) {
			item = PyBytes_FromStringAndSize((const char *)rec, e.size);
		} else {
			uint32_t type;

			memcpy(&type, rec + 8, 4);
			item = es_event(c, rec, type < ES_MAX_TYPES ? &prev[type] : NULL, empty, &cid_of, &cid);
			if (item && type < ES_MAX_TYPES) {
				prev[type].rec = rec;
				prev[type].ev = item;
			}
		}
		if (!item || PyList_SetItem(list, i, item) < 0)
			goto fail;
		pos = (pos + sizeof(e) + e.size + 7) & ~(size_t)7;
	}
	Py_XDECREF(cid);
	Py_DECREF(empty);
	return list;
fail:
	Py_XDECREF(cid);
	Py_XDECREF(empty);
	Py_DECREF(list);
	return NULL;
}
