/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The process context's side of the consumer. A batch is drained in two
 * phases, the lifecycle ring first: the process table learns the processes
 * it started, ended or changed before the activity ring's records are
 * transcoded, whose processes the transcoder then finds in the cache
 * (transcode.c, es_context). es_attach() then puts what it found on the
 * decoded events: the ProcessInfo objects are shared, one per process
 * state, so an event costs two pointer stores here and nothing in Python.
 *
 * Only es_attach() touches Python objects; it is called through ctypes with
 * the GIL held (cffi releases the GIL around its calls).
 */
#define Py_LIMITED_API 0x030B0000
#include <Python.h>
#include <errno.h>
#include <sys/epoll.h>
#include <bpf/libbpf.h>

#include "consumer.h"

/* wait up to timeout_ms until a ring has data, without consuming any: the
 * rings are then drained one by one, in order */
int es_wait(struct es_consumer *c, int timeout_ms)
{
	struct epoll_event ev[2];
	int n;

	if (timeout_ms == 0)
		return 0;
	n = epoll_wait(es_epoll_fd(c), ev, 2, timeout_ms);
	return n < 0 ? -errno : n;
}

/* drain ring idx (in the order es_ring_new/es_ring_add were given) into
 * the batch; the number of records in the batch, or a negative errno */
int es_consume_ring(struct es_consumer *c, unsigned int idx)
{
	struct ring *r;
	int err;

	if (c->nperf)
		return es_perf_consume(c, idx);
	r = ring_buffer__ring(c->rb, idx);
	if (!r)
		return -EINVAL;
	if (c->count >= c->max_count || c->len + c->reserve > c->cap)
		return (int)c->count;
	err = ring__consume(r);
	if (err == ES_BATCH_FULL || err >= 0)
		return (int)c->count;
	return err;
}

static inline void es_put_slot(PyObject *ev, Py_ssize_t off, uint64_t value)
{
	PyObject **slot = (PyObject **)((char *)ev + off);
	PyObject *old = *slot;

	if (!value)
		return;
	Py_INCREF((PyObject *)(uintptr_t)value);
	*slot = (PyObject *)(uintptr_t)value;
	Py_XDECREF(old);
}

/*
 * The events of the batch just decoded from c's buffer are batch's items
 * in record order (a raw record is a bytes item, skipped). off_process and
 * off_parent are where every event class keeps its process and parent
 * fields, found by the caller on real instances; only instances of base
 * (the events' common class) are written. Returns 0, or -1 with a Python
 * exception set.
 */
int es_attach(struct es_consumer *c, PyObject *batch, PyObject *base, Py_ssize_t off_process, Py_ssize_t off_parent)
{
	Py_ssize_t i, n = PyList_Size(batch);

	if (n < 0)
		return -1;
	if (!PyType_Check(base)) {
		PyErr_SetString(PyExc_TypeError, "es_attach: base is not a type");
		return -1;
	}
	if ((size_t)n > c->count)
		n = (Py_ssize_t)c->count;
	for (i = 0; i < n; i++) {
		const struct es_ctx_ref *ref = &c->refs[i];
		PyObject *ev;

		if (!ref->process && !ref->parent)
			continue;
		ev = PyList_GetItem(batch, i);
		if (!ev || !PyObject_TypeCheck(ev, (PyTypeObject *)base))
			continue;
		es_put_slot(ev, off_process, ref->process);
		es_put_slot(ev, off_parent, ref->parent);
	}
	return 0;
}
