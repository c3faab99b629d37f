/*
 * lpmbench._lpmbench: the C twin of lpmbench/dataplane/_python.py (same API, same behaviour).
 *
 * One call runs one stream's bulk loop (ext/loops.c) with the GIL released for the whole loop, so
 * several streams (one OS thread each) use several cores.  The GIL is taken back only to check
 * signals after EINTR, to build the result or to raise.  System calls in, plain ints and tuples out.
 *
 * Both loops:
 *   - work on a duplicate of the caller's socket descriptor, which they never close; O_NONBLOCK is
 *     set for the run (sendfile has no per-call "don't wait" flag) and the original flags restored;
 *   - stop at the CLOCK_MONOTONIC deadline (the clock of time.monotonic_ns()), at max_bytes, at EOF,
 *     or when counters[SLOT_STOP] != 0, which is checked at least every POLL_SLICE_MS;
 *   - store the bytes moved by this call in counters[SLOT_BYTES] after every system call (relaxed
 *     atomic 64-bit stores into the array's memory, held through the buffer protocol);
 *   - raise OSError with errno for socket errors (MSG_NOSIGNAL: a reset peer is EPIPE, not SIGPIPE).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <string.h>

#include "loops.h"

/* Run a loop with the GIL released; 0 when done, -1 with a Python exception set. */
static int run_without_gil(stream_loop *loop, loop_status (*body)(stream_loop *)) {
    for (;;) {
        loop_status status;
        Py_BEGIN_ALLOW_THREADS
        status = body(loop);
        Py_END_ALLOW_THREADS
        if (status == LOOP_DONE)
            return 0;
        if (status == LOOP_ERROR) {
            errno = loop->saved_errno;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        if (PyErr_CheckSignals() < 0) /* EINTR: let Ctrl-C through, then carry on */
            return -1;
    }
}

/* ------------------------------------------------------------------ argument checks */

/* The counters must be a writable, contiguous, 64-bit aligned array('Q') of COUNTER_SLOTS or more. */
static int get_counters(PyObject *counters, Py_buffer *view) {
    if (PyObject_GetBuffer(counters, view, PyBUF_FORMAT | PyBUF_ND) < 0)
        return -1;
    const char *format = view->format ? view->format : "B";
    if (view->readonly || view->itemsize != 8 || view->ndim != 1
        || (strcmp(format, "Q") != 0 && strcmp(format, "@Q") != 0)
        || view->len < (Py_ssize_t)(COUNTER_SLOTS * sizeof(uint64_t))
        || ((uintptr_t)view->buf % sizeof(uint64_t)) != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "counters must be a writable array('Q') of at least %d slots "
                     "(use new_counters())", COUNTER_SLOTS);
        return -1;
    }
    return 0;
}

static int get_buffer(PyObject *obj, Py_buffer *view, int writable, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0)
        return -1;
    if (writable && view->readonly) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s must be writable (for example a bytearray)", what);
        return -1;
    }
    if (view->len == 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s must not be empty", what);
        return -1;
    }
    return 0;
}

static int parse_method(const char *name, send_method *method) {
    if (strcmp(name, "auto") == 0) {
        *method = METHOD_AUTO;
        return 0;
    }
#ifdef HAVE_ZEROCOPY
    if (strcmp(name, "zerocopy") == 0) {
        *method = METHOD_ZEROCOPY;
        return 0;
    }
#endif
#ifdef HAVE_SENDFILE_MEMFD
    if (strcmp(name, "sendfile") == 0) {
        *method = METHOD_SENDFILE;
        return 0;
    }
#endif
    if (strcmp(name, "send") == 0) {
        *method = METHOD_SEND;
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "send method '%s' is not supported by the C data plane "
                 "(choose from %s or auto)", name, SEND_METHOD_LIST);
    return -1;
}

/* ------------------------------------------------------------------ module functions */

PyDoc_STRVAR(send_stream_doc,
"send_stream(fd, payload, deadline_ns, max_bytes, counters, method='auto') -> (bytes_sent, method_used)\n\n"
"Send payload repeatedly on fd until deadline_ns (time.monotonic_ns clock), max_bytes (0: no limit)\n"
"or counters[SLOT_STOP] != 0.  method is 'auto' or one of SEND_METHODS.");

static PyObject *send_stream(PyObject *module, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"fd", "payload", "deadline_ns", "max_bytes", "counters", "method", NULL};
    int fd;
    long long deadline_ns, max_bytes;
    PyObject *payload, *counters;
    const char *method_name = "auto";
    send_method method;
    Py_buffer payload_view, counters_view;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iOLLO|s:send_stream", keywords, &fd, &payload,
                                     &deadline_ns, &max_bytes, &counters, &method_name))
        return NULL;
    if (parse_method(method_name, &method) < 0)
        return NULL;
    if (max_bytes < 0)
        return PyErr_Format(PyExc_ValueError, "max_bytes must be >= 0 (0: no limit)");
    if (get_buffer(payload, &payload_view, 0, "payload") < 0)
        return NULL;
    if (get_counters(counters, &counters_view) < 0) {
        PyBuffer_Release(&payload_view);
        return NULL;
    }
    int status = -1, flags = 0;
    stream_loop loop = {.fd = claim_socket(fd, &flags), .deadline_ns = deadline_ns,
                        .max_bytes = (uint64_t)max_bytes, .slots = counters_view.buf, .method = method,
                        .data = payload_view.buf, .size = (size_t)payload_view.len, .memfd = -1};
    if (loop.fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
    } else {
        if (prepare_method(&loop, method) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
        } else {
            loop.slots[SLOT_BYTES] = 0;
            status = run_without_gil(&loop, send_loop);
        }
        release_method(&loop);
        release_socket(loop.fd, flags);
    }
    PyBuffer_Release(&counters_view);
    PyBuffer_Release(&payload_view);
    if (status < 0)
        return NULL;
    return Py_BuildValue("(Ks)", (unsigned long long)loop.total, METHOD_NAMES[loop.method]);
}

PyDoc_STRVAR(recv_stream_doc,
"recv_stream(fd, buffer, deadline_ns, counters, discard=False) -> bytes_received\n\n"
"Receive on fd into buffer until EOF, deadline_ns or counters[SLOT_STOP] != 0.  With discard the\n"
"kernel drops the data (MSG_TRUNC, Linux only) instead of copying it.");

static PyObject *recv_stream(PyObject *module, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"fd", "buffer", "deadline_ns", "counters", "discard", NULL};
    int fd, discard = 0;
    long long deadline_ns;
    PyObject *buffer, *counters;
    Py_buffer buffer_view, counters_view;
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iOLO|p:recv_stream", keywords, &fd, &buffer,
                                     &deadline_ns, &counters, &discard))
        return NULL;
#ifndef __linux__
    if (discard) {
        errno = EOPNOTSUPP;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
#endif
    if (get_buffer(buffer, &buffer_view, 1, "buffer") < 0)
        return NULL;
    if (get_counters(counters, &counters_view) < 0) {
        PyBuffer_Release(&buffer_view);
        return NULL;
    }
    int status = -1, flags = 0;
    stream_loop loop = {.fd = claim_socket(fd, &flags), .deadline_ns = deadline_ns,
                        .slots = counters_view.buf, .buffer = buffer_view.buf,
                        .buffer_size = (size_t)buffer_view.len, .memfd = -1};
#ifdef __linux__
    /* MSG_TRUNC on a TCP socket: the kernel frees the data without copying it out. */
    loop.recv_flags = discard ? MSG_TRUNC : 0;
#endif
    if (loop.fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
    } else {
        loop.slots[SLOT_BYTES] = 0;
        status = run_without_gil(&loop, recv_loop);
        release_socket(loop.fd, flags);
    }
    PyBuffer_Release(&counters_view);
    PyBuffer_Release(&buffer_view);
    if (status < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong((unsigned long long)loop.total);
}

PyDoc_STRVAR(new_counters_doc, "new_counters() -> array('Q'): shared counters for one stream.");

static PyObject *new_counters(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    PyObject *array_module = PyImport_ImportModule("array");
    if (array_module == NULL)
        return NULL;
    static const char zeros[COUNTER_SLOTS * sizeof(uint64_t)] = {0};
    PyObject *counters = PyObject_CallMethod(array_module, "array", "sy#", "Q", zeros,
                                             (Py_ssize_t)sizeof zeros);
    Py_DECREF(array_module);
    return counters;
}

static PyMethodDef module_methods[] = {
    {"send_stream", (PyCFunction)(void (*)(void))send_stream, METH_VARARGS | METH_KEYWORDS, send_stream_doc},
    {"recv_stream", (PyCFunction)(void (*)(void))recv_stream, METH_VARARGS | METH_KEYWORDS, recv_stream_doc},
    {"new_counters", new_counters, METH_NOARGS, new_counters_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "lpmbench.dataplane._lpmbench",
    "C twin of lpmbench.dataplane._python: one stream's send or receive loop with the GIL released.",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

static PyObject *send_methods_tuple(void) {
#if defined(HAVE_ZEROCOPY) && defined(HAVE_SENDFILE_MEMFD)
    return Py_BuildValue("(sss)", "zerocopy", "sendfile", "send");
#elif defined(HAVE_SENDFILE_MEMFD)
    return Py_BuildValue("(ss)", "sendfile", "send");
#else
    return Py_BuildValue("(s)", "send");
#endif
}

PyMODINIT_FUNC PyInit__lpmbench(void) {
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    PyObject *methods = send_methods_tuple();
    if (methods == NULL || PyModule_AddObject(module, "SEND_METHODS", methods) < 0) {
        Py_XDECREF(methods); /* PyModule_AddObject steals the reference only on success */
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddStringConstant(module, "IMPLEMENTATION", "c") < 0
        || PyModule_AddIntConstant(module, "SLOT_BYTES", SLOT_BYTES) < 0
        || PyModule_AddIntConstant(module, "SLOT_STOP", SLOT_STOP) < 0
        || PyModule_AddIntConstant(module, "COUNTER_SLOTS", COUNTER_SLOTS) < 0
        || PyModule_AddIntConstant(module, "POLL_SLICE_MS", POLL_SLICE_MS) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
