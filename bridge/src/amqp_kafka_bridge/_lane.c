/* The bridge's native lane: AMQP transfers -> librdkafka -> settled deliveries, with Python only to convert.
 *
 * Profiled at capacity, most of the bridge's CPU per message went to Python around the
 * conversion itself: reading each transfer through proton's cffi calls (the collector loop,
 * the delivery's checks, the read, its address), confluent-kafka's produce (argument parsing,
 * a per-record callback object), the delivery-report callback run in Python on the poll thread
 * (taking the GIL from the reactor), and the reactor's per-report settle. This module does all
 * of that in C over the same C libraries the bridge already loads (librdkafka from
 * confluent-kafka, proton-c from python-qpid-proton), found in the running process with
 * dlopen/dlsym: nothing is linked at build time and no C header of either library is needed,
 * only Python's.
 *
 * serve() reads the transfers of the receiving links at the head of the reactor's collector.
 * A link registered as an Inlet (the raw converter) has each message of the common shape
 * converted to its record in C (_plain_record.c) and queued; every other transfer goes whole
 * (bytes, and its delivery's address, referenced) to the link's on_transfer_at, which decodes
 * and converts it in Python and queues the record.
 *
 * A Lane owns one idempotent librdkafka producer. produce() takes a record and the raw
 * pn_delivery_t it came from (referenced by the caller) or a Python token; librdkafka's delivery
 * reports are collected by dr_msg_cb on the thread that polls (no GIL), and settle(), called on
 * the reactor thread or with the reactor lock held, accepts and settles each delivery whose
 * record Kafka acknowledged, in C, and returns per link counts, the failures (for Python's
 * reject-or-release decision) and the Python tokens' reports. Only the common case stays in C:
 * every rare path (a failure, a dead letter) goes back to Python.
 *
 * Links are numbered slots: a closed slot's later reports only count; a slot is reused once it
 * is closed and nothing of it is in flight.
 *
 * proton-c is used only from the thread that runs the reactor, or one holding its lock, as
 * everywhere in the bridge; librdkafka's callbacks touch only this module's own lists. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "_plain_record.h"

/* ---- librdkafka's ABI (stable since 1.x), declared here ---- */
typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_conf_s rd_kafka_conf_t;
typedef struct rd_kafka_headers_s rd_kafka_headers_t;
typedef struct rd_kafka_metadata_s rd_kafka_metadata_t;
typedef struct {
    int err;
    void *rkt;
    int32_t partition;
    void *payload;
    size_t len;
    void *key;
    size_t key_len;
    int64_t offset;
    void *_private;
} rd_kafka_message_t;

enum { VT_END, VT_TOPIC, VT_RKT, VT_PARTITION, VT_VALUE, VT_KEY, VT_OPAQUE, VT_MSGFLAGS, VT_TIMESTAMP, VT_HEADER, VT_HEADERS };
#define MSG_F_COPY 0x2
#define ERR_QUEUE_FULL (-184)
#define ERR_FATAL (-150)
#define PURGE_F_QUEUE 0x1
#define PURGE_F_INFLIGHT 0x2

typedef void (*dr_cb_t)(rd_kafka_t *, const rd_kafka_message_t *, void *);
typedef void (*error_cb_t)(rd_kafka_t *, int, const char *, void *);
typedef void (*log_cb_t)(const rd_kafka_t *, int, const char *, const char *);
typedef int (*stats_cb_t)(rd_kafka_t *, char *, size_t, void *);

static struct {
    int (*version)(void);
    rd_kafka_conf_t *(*conf_new)(void);
    rd_kafka_conf_t *(*conf_dup)(const rd_kafka_conf_t *);
    void (*conf_destroy)(rd_kafka_conf_t *);
    int (*conf_set)(rd_kafka_conf_t *, const char *, const char *, char *, size_t);
    void (*conf_set_dr_msg_cb)(rd_kafka_conf_t *, dr_cb_t);
    void (*conf_set_error_cb)(rd_kafka_conf_t *, error_cb_t);
    void (*conf_set_log_cb)(rd_kafka_conf_t *, log_cb_t);
    void (*conf_set_stats_cb)(rd_kafka_conf_t *, stats_cb_t);
    void (*conf_set_opaque)(rd_kafka_conf_t *, void *);
    rd_kafka_t *(*new_)(int, rd_kafka_conf_t *, char *, size_t);
    void (*destroy)(rd_kafka_t *);
    void *(*opaque)(const rd_kafka_t *);
    int (*producev)(rd_kafka_t *, ...);
    int (*poll)(rd_kafka_t *, int);
    int (*flush)(rd_kafka_t *, int);
    int (*purge)(rd_kafka_t *, int);
    int (*outq_len)(rd_kafka_t *);
    const char *(*err2str)(int);
    int (*fatal_error)(rd_kafka_t *, char *, size_t);
    int (*metadata)(rd_kafka_t *, int, void *, const rd_kafka_metadata_t **, int);
    void (*metadata_destroy)(const rd_kafka_metadata_t *);
    rd_kafka_headers_t *(*headers_new)(size_t);
    int (*header_add)(rd_kafka_headers_t *, const char *, ssize_t, const void *, ssize_t);
    void (*headers_destroy)(rd_kafka_headers_t *);
} rk;

/* ---- proton-c, as python-qpid-proton's cffi module exports it ---- */
static struct {
    void (*update)(void *, uint64_t);
    void (*settle)(void *);
    int (*decref)(void *);
    void *(*incref)(void *);
    void *(*collector_peek)(void *);
    bool (*collector_pop)(void *); /* bool as proton declares it: only its low byte is defined */
    int (*event_type)(void *);
    void *(*event_delivery)(void *);
    void *(*delivery_link)(void *);
    bool (*link_is_sender)(void *);
    bool (*delivery_aborted)(void *);
    bool (*delivery_partial)(void *);
    bool (*delivery_readable)(void *);
    bool (*delivery_settled)(void *);
    size_t (*delivery_pending)(void *);
    ssize_t (*link_recv)(void *, char *, size_t);
    bool (*link_advance)(void *);
} pn;
static int pn_delivery_event; /* PN_DELIVERY, from python-qpid-proton (load) */
#define PN_ACCEPTED 0x24

static int loaded = 0;

#define RESOLVE(handle, table, field, name)                                          \
    do {                                                                             \
        *(void **)(&table.field) = dlsym(handle, name);                              \
        if (!table.field) {                                                          \
            PyErr_Format(PyExc_ImportError, "the native lane needs %s, missing", name); \
            return -1;                                                               \
        }                                                                            \
    } while (0)

static int resolve(const char *rdkafka_path, const char *proton_path) {
    void *r = dlopen(rdkafka_path, RTLD_NOW | RTLD_LOCAL);
    if (!r) {
        PyErr_Format(PyExc_ImportError, "cannot open librdkafka %s: %s", rdkafka_path, dlerror());
        return -1;
    }
    void *p = dlopen(proton_path, RTLD_NOW | RTLD_LOCAL);
    if (!p) {
        PyErr_Format(PyExc_ImportError, "cannot open proton-c %s: %s", proton_path, dlerror());
        return -1;
    }
    RESOLVE(r, rk, version, "rd_kafka_version");
    RESOLVE(r, rk, conf_new, "rd_kafka_conf_new");
    RESOLVE(r, rk, conf_dup, "rd_kafka_conf_dup");
    RESOLVE(r, rk, conf_destroy, "rd_kafka_conf_destroy");
    RESOLVE(r, rk, conf_set, "rd_kafka_conf_set");
    RESOLVE(r, rk, conf_set_dr_msg_cb, "rd_kafka_conf_set_dr_msg_cb");
    RESOLVE(r, rk, conf_set_error_cb, "rd_kafka_conf_set_error_cb");
    RESOLVE(r, rk, conf_set_log_cb, "rd_kafka_conf_set_log_cb");
    RESOLVE(r, rk, conf_set_stats_cb, "rd_kafka_conf_set_stats_cb");
    RESOLVE(r, rk, conf_set_opaque, "rd_kafka_conf_set_opaque");
    RESOLVE(r, rk, new_, "rd_kafka_new");
    RESOLVE(r, rk, destroy, "rd_kafka_destroy");
    RESOLVE(r, rk, opaque, "rd_kafka_opaque");
    RESOLVE(r, rk, producev, "rd_kafka_producev");
    RESOLVE(r, rk, poll, "rd_kafka_poll");
    RESOLVE(r, rk, flush, "rd_kafka_flush");
    RESOLVE(r, rk, purge, "rd_kafka_purge");
    RESOLVE(r, rk, outq_len, "rd_kafka_outq_len");
    RESOLVE(r, rk, err2str, "rd_kafka_err2str");
    RESOLVE(r, rk, fatal_error, "rd_kafka_fatal_error");
    RESOLVE(r, rk, metadata, "rd_kafka_metadata");
    RESOLVE(r, rk, metadata_destroy, "rd_kafka_metadata_destroy");
    RESOLVE(r, rk, headers_new, "rd_kafka_headers_new");
    RESOLVE(r, rk, header_add, "rd_kafka_header_add");
    RESOLVE(r, rk, headers_destroy, "rd_kafka_headers_destroy");
    RESOLVE(p, pn, update, "pn_delivery_update");
    RESOLVE(p, pn, settle, "pn_delivery_settle");
    RESOLVE(p, pn, decref, "pn_decref");
    RESOLVE(p, pn, incref, "pn_incref");
    RESOLVE(p, pn, collector_peek, "pn_collector_peek");
    RESOLVE(p, pn, collector_pop, "pn_collector_pop");
    RESOLVE(p, pn, event_type, "pn_event_type");
    RESOLVE(p, pn, event_delivery, "pn_event_delivery");
    RESOLVE(p, pn, delivery_link, "pn_delivery_link");
    RESOLVE(p, pn, link_is_sender, "pn_link_is_sender");
    RESOLVE(p, pn, delivery_aborted, "pn_delivery_aborted");
    RESOLVE(p, pn, delivery_partial, "pn_delivery_partial");
    RESOLVE(p, pn, delivery_readable, "pn_delivery_readable");
    RESOLVE(p, pn, delivery_settled, "pn_delivery_settled");
    RESOLVE(p, pn, delivery_pending, "pn_delivery_pending");
    RESOLVE(p, pn, link_recv, "pn_link_recv");
    RESOLVE(p, pn, link_advance, "pn_link_advance");
    if (rk.version() < 0x02000000) {
        PyErr_Format(PyExc_ImportError, "the native lane needs librdkafka 2.0 or later, found 0x%x", rk.version());
        return -1;
    }
    loaded = 1;
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the lane ---- */

typedef struct msgstate {
    PyObject *token; /* a Python token (dead letters), or NULL for a delivery of a slot */
    void *dlv;       /* the referenced pn_delivery_t, or NULL (pre-settled by its sender) */
    int32_t slot;
    uint32_t size;
    double started;
    int err;               /* its report's error (0: acknowledged), once reported */
    struct msgstate *next; /* the reports waiting for settle: a list through the records' own states, so a report needs no memory */
} msgstate_t;

typedef struct {
    int used, open, touched;
    int64_t in_flight, done, owed, acked, bytes;
    double latency_sum;
    int64_t *buckets; /* one count per bound */
} slot_t;

typedef struct {
    int kind; /* 0 error, 1 log, 2 stats */
    int code;
    int fatal;
    char *text;
} event_t;

typedef struct {
    PyObject_HEAD
    rd_kafka_t *rk;
    rd_kafka_conf_t *conf; /* a copy, for a replacement after a fatal error */
    rd_kafka_t *retired[4]; /* producers replaced after a fatal error: kept until the next replacements, see renew */
    int n_retired;
    pthread_mutex_t lock;  /* reports and events: appended on librdkafka's threads */
    msgstate_t *reports, *last_report; /* in report order */
    Py_ssize_t n_reports;
    event_t *events;
    Py_ssize_t n_events, cap_events;
    int fatal;
    slot_t *slots;
    Py_ssize_t n_slots;
    double *bounds;
    Py_ssize_t n_bounds;
    PyObject *error_factory; /* code -> the exception a refused produce raises */
} Lane;

static void push_event(Lane *self, int kind, int code, int fatal, const char *text, size_t len) {
    pthread_mutex_lock(&self->lock);
    if (self->n_events < 10000) { /* bounded: logs nobody polls for are dropped, not kept */
        if (self->n_events == self->cap_events) {
            Py_ssize_t cap = self->cap_events ? self->cap_events * 2 : 16;
            event_t *grown = realloc(self->events, cap * sizeof(event_t));
            if (!grown) {
                pthread_mutex_unlock(&self->lock);
                return;
            }
            self->events = grown;
            self->cap_events = cap;
        }
        char *copy = malloc(len + 1);
        if (copy) {
            memcpy(copy, text, len);
            copy[len] = 0;
            self->events[self->n_events++] = (event_t){kind, code, fatal, copy};
        }
    }
    if (fatal)
        self->fatal = 1;
    pthread_mutex_unlock(&self->lock);
}

static void on_report(rd_kafka_t *k, const rd_kafka_message_t *m, void *opaque) {
    Lane *self = opaque;
    msgstate_t *st = m->_private;
    if (!st)
        return;
    st->err = m->err;
    st->next = NULL;
    pthread_mutex_lock(&self->lock);
    if (self->last_report)
        self->last_report->next = st;
    else
        self->reports = st;
    self->last_report = st;
    self->n_reports++;
    pthread_mutex_unlock(&self->lock);
}

static void on_error(rd_kafka_t *k, int err, const char *reason, void *opaque) {
    char text[512];
    int fatal = 0;
    if (err == ERR_FATAL) {
        fatal = 1;
        char why[400];
        err = rk.fatal_error(k, why, sizeof why);
        snprintf(text, sizeof text, "%s", why);
    } else {
        snprintf(text, sizeof text, "%s", reason);
    }
    push_event(opaque, 0, err, fatal, text, strlen(text));
}

static void on_log(const rd_kafka_t *k, int level, const char *fac, const char *buf) {
    char text[1024];
    int n = snprintf(text, sizeof text, "%s %s", fac, buf);
    push_event(rk.opaque(k), 1, level, 0, text, n < (int)sizeof text ? (size_t)n : sizeof text - 1);
}

static int on_stats(rd_kafka_t *k, char *json, size_t len, void *opaque) {
    push_event(opaque, 2, 0, 0, json, len);
    return 0; /* librdkafka frees json */
}

static rd_kafka_t *new_producer(Lane *self) {
    char errstr[512];
    rd_kafka_conf_t *conf = rk.conf_dup(self->conf);
    rd_kafka_t *k = rk.new_(0, conf, errstr, sizeof errstr);
    if (!k) {
        rk.conf_destroy(conf);
        PyErr_Format(PyExc_ValueError, "librdkafka refused the producer configuration: %s", errstr);
    }
    return k;
}

static int Lane_init(Lane *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"config", "bounds", "error_factory", NULL};
    PyObject *config, *bounds, *factory;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OO", kwlist, &PyDict_Type, &config, &bounds, &factory))
        return -1;
    if (!loaded) {
        PyErr_SetString(PyExc_RuntimeError, "call _lane.load(librdkafka_path, proton_path) first");
        return -1;
    }
    PyObject *seq = PySequence_Fast(bounds, "bounds must be a sequence of floats");
    if (!seq)
        return -1;
    self->n_bounds = PySequence_Fast_GET_SIZE(seq);
    self->bounds = calloc(self->n_bounds ? self->n_bounds : 1, sizeof(double));
    for (Py_ssize_t i = 0; i < self->n_bounds; i++)
        self->bounds[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
    Py_DECREF(seq);
    if (PyErr_Occurred())
        return -1;
    Py_INCREF(factory);
    self->error_factory = factory;
    pthread_mutex_init(&self->lock, NULL);

    char errstr[512];
    self->conf = rk.conf_new();
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(config, &pos, &key, &value)) {
        const char *k = PyUnicode_AsUTF8(key), *v = PyUnicode_AsUTF8(value);
        if (!k || !v) {
            PyErr_SetString(PyExc_TypeError, "the producer configuration must map strings to strings");
            return -1;
        }
        if (rk.conf_set(self->conf, k, v, errstr, sizeof errstr) != 0) {
            PyErr_Format(PyExc_ValueError, "librdkafka refused %s=%s: %s", k, v, errstr);
            return -1;
        }
    }
    rk.conf_set_dr_msg_cb(self->conf, on_report);
    rk.conf_set_error_cb(self->conf, on_error);
    rk.conf_set_log_cb(self->conf, on_log);
    rk.conf_set_stats_cb(self->conf, on_stats);
    rk.conf_set_opaque(self->conf, self);
    self->rk = new_producer(self);
    return self->rk ? 0 : -1;
}

static void free_state(msgstate_t *st) {
    Py_XDECREF(st->token);
    if (st->dlv)
        pn.decref(st->dlv);
    free(st);
}

static void Lane_dealloc(Lane *self) {
    if (self->rk) {
        rd_kafka_t *k = self->rk;
        self->rk = NULL;
        Py_BEGIN_ALLOW_THREADS
        rk.purge(k, PURGE_F_QUEUE | PURGE_F_INFLIGHT);
        rk.flush(k, 1000);
        rk.destroy(k);
        for (int i = 0; i < self->n_retired; i++)
            rk.destroy(self->retired[i]);
        Py_END_ALLOW_THREADS
        self->n_retired = 0;
    }
    for (msgstate_t *st = self->reports, *next; st; st = next) {
        next = st->next;
        free_state(st);
    }
    for (Py_ssize_t i = 0; i < self->n_events; i++)
        free(self->events[i].text);
    for (Py_ssize_t i = 0; i < self->n_slots; i++)
        free(self->slots[i].buckets);
    free(self->events);
    free(self->slots);
    free(self->bounds);
    if (self->conf)
        rk.conf_destroy(self->conf);
    Py_XDECREF(self->error_factory);
    if (loaded)
        pthread_mutex_destroy(&self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Lane_open_slot(Lane *self, PyObject *unused) {
    Py_ssize_t i;
    for (i = 0; i < self->n_slots && self->slots[i].used; i++)
        ;
    if (i == self->n_slots) {
        slot_t *grown = realloc(self->slots, (self->n_slots + 1) * sizeof(slot_t));
        if (!grown)
            return PyErr_NoMemory();
        self->slots = grown;
        self->n_slots++;
        self->slots[i].buckets = NULL;
    }
    slot_t *s = &self->slots[i];
    int64_t *buckets = s->buckets ? s->buckets : calloc(self->n_bounds ? self->n_bounds : 1, sizeof(int64_t));
    if (!buckets)
        return PyErr_NoMemory();
    memset(s, 0, sizeof *s);
    memset(buckets, 0, (self->n_bounds ? self->n_bounds : 1) * sizeof(int64_t));
    s->buckets = buckets;
    s->used = s->open = 1;
    return PyLong_FromSsize_t(i);
}

static slot_t *slot_at(Lane *self, PyObject *arg, Py_ssize_t *index) {
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0 || i >= self->n_slots || !self->slots[i].used) {
        PyErr_Format(PyExc_ValueError, "no open slot %zd", i);
        return NULL;
    }
    if (index)
        *index = i;
    return &self->slots[i];
}

static PyObject *Lane_close_slot(Lane *self, PyObject *arg) {
    slot_t *s = slot_at(self, arg, NULL);
    if (!s)
        return NULL;
    s->open = 0;
    if (s->in_flight == 0 && !s->touched)
        s->used = 0;
    return PyBool_FromLong(!s->used); /* freed now, or with its last report */
}

/* One record to librdkafka: 0, or -1 with the exception set (BufferError: the local queue is full;
 * error_factory's: librdkafka refused it). ``partition`` and ``timestamp`` may be None (the
 * partitioner's choice; Kafka stamps it); ``dlv`` is the delivery's address (0: none). */
static int produce_one(Lane *self, Py_ssize_t slot, PyObject *topic_obj, PyObject *value_obj, PyObject *key_obj, PyObject *partition_obj,
                       PyObject *timestamp_obj, PyObject *headers_obj, PyObject *dlv_obj, PyObject *size_obj, PyObject *token) {
    const char *topic = PyUnicode_AsUTF8(topic_obj);
    if (!topic)
        return -1;
    char *value = NULL, *key = NULL;
    Py_ssize_t value_len = 0, key_len = 0;
    if (value_obj != Py_None && PyBytes_AsStringAndSize(value_obj, &value, &value_len) < 0)
        return -1;
    if (key_obj != Py_None && PyBytes_AsStringAndSize(key_obj, &key, &key_len) < 0)
        return -1;
    long partition = partition_obj == Py_None ? -1 : PyLong_AsLong(partition_obj);
    long long timestamp = timestamp_obj == Py_None ? 0 : PyLong_AsLongLong(timestamp_obj);
    void *dlv = PyLong_AsVoidPtr(dlv_obj);
    long size = PyLong_AsLong(size_obj);
    if (PyErr_Occurred())
        return -1;
    slot_t *s = NULL;
    if (slot >= 0) {
        if (slot >= self->n_slots || !self->slots[slot].used) {
            PyErr_Format(PyExc_ValueError, "no open slot %zd", slot);
            return -1;
        }
        s = &self->slots[slot];
    }
    rd_kafka_headers_t *headers = NULL;
    if (headers_obj != Py_None && PyObject_IsTrue(headers_obj)) {
        PyObject *seq = PySequence_Fast(headers_obj, "headers must be a sequence of (name, bytes) pairs");
        if (!seq)
            return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        headers = rk.headers_new(n);
        for (Py_ssize_t i = 0; i < n; i++) {
            const char *name;
            char *hv = NULL;
            Py_ssize_t hlen = 0, nlen;
            PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !(name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, 0), &nlen)) ||
                (PyTuple_GET_ITEM(pair, 1) != Py_None && PyBytes_AsStringAndSize(PyTuple_GET_ITEM(pair, 1), &hv, &hlen) < 0)) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "a header must be a (str, bytes) pair");
                rk.headers_destroy(headers);
                Py_DECREF(seq);
                return -1;
            }
            rk.header_add(headers, name, nlen, hv, hv ? hlen : -1);
        }
        Py_DECREF(seq);
    }
    msgstate_t *st = malloc(sizeof *st);
    if (!st) {
        if (headers)
            rk.headers_destroy(headers);
        PyErr_NoMemory();
        return -1;
    }
    st->token = token == Py_None ? NULL : token;
    Py_XINCREF(st->token);
    st->dlv = dlv;
    st->slot = (int32_t)slot;
    st->size = (uint32_t)size;
    st->started = now_s();
    int err;
    if (headers)
        err = rk.producev(self->rk, VT_TOPIC, topic, VT_PARTITION, (int32_t)partition, VT_VALUE, value, (size_t)value_len, VT_KEY, key,
                          (size_t)key_len, VT_TIMESTAMP, (int64_t)timestamp, VT_MSGFLAGS, MSG_F_COPY, VT_OPAQUE, st, VT_HEADERS, headers,
                          VT_END);
    else
        err = rk.producev(self->rk, VT_TOPIC, topic, VT_PARTITION, (int32_t)partition, VT_VALUE, value, (size_t)value_len, VT_KEY, key,
                          (size_t)key_len, VT_TIMESTAMP, (int64_t)timestamp, VT_MSGFLAGS, MSG_F_COPY, VT_OPAQUE, st, VT_END);
    if (err) {
        if (headers)
            rk.headers_destroy(headers);
        Py_XDECREF(st->token);
        free(st); /* the delivery's reference stays the caller's: it settles the refusal */
        if (err == ERR_QUEUE_FULL) {
            PyErr_SetString(PyExc_BufferError, "local producer queue is full");
            return -1;
        }
        PyObject *exc = PyObject_CallFunction(self->error_factory, "i", err);
        if (exc) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return -1;
    }
    if (s)
        s->in_flight++;
    return 0;
}

/* produce(slot, topic, value, key, partition, timestamp_ms, headers, delivery, size, token) */
static PyObject *Lane_produce(Lane *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "produce(slot, topic, value, key, partition, timestamp_ms, headers, delivery, size, token)");
        return NULL;
    }
    Py_ssize_t slot = PyLong_AsSsize_t(args[0]);
    if (slot == -1 && PyErr_Occurred())
        return NULL;
    if (produce_one(self, slot, args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8], args[9]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* produce_queued(slot, queued) -> [(delivery, exception)]
 *
 * A link's burst in one call: ``queued`` is a list of (record, delivery, size, started), the
 * record a KafkaRecord (topic, value, key, partition, offset, headers, timestamp_ms: its field
 * order). Returns the ones librdkafka would not take, each with what produce would have raised,
 * in order; their deliveries' references stay the caller's. */
static PyObject *Lane_produce_queued(Lane *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "produce_queued(slot, list of (record, delivery, size, started))");
        return NULL;
    }
    Py_ssize_t slot = PyLong_AsSsize_t(args[0]);
    if (slot == -1 && PyErr_Occurred())
        return NULL;
    PyObject *queued = args[1], *refused = PyList_New(0);
    if (!refused)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(queued); i++) {
        PyObject *item = PyList_GET_ITEM(queued, i), *record;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 3 || !PyTuple_Check(record = PyTuple_GET_ITEM(item, 0)) ||
            PyTuple_GET_SIZE(record) != 7) {
            PyErr_SetString(PyExc_TypeError, "a queued item is (KafkaRecord, delivery, size, started)");
        } else if (produce_one(self, slot, PyTuple_GET_ITEM(record, 0), PyTuple_GET_ITEM(record, 1), PyTuple_GET_ITEM(record, 2),
                               PyTuple_GET_ITEM(record, 3), PyTuple_GET_ITEM(record, 6), PyTuple_GET_ITEM(record, 5),
                               PyTuple_GET_ITEM(item, 1), PyTuple_GET_ITEM(item, 2), Py_None) == 0) {
            continue;
        }
        /* refused (or malformed): hand it back with its exception, never drop it */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        PyObject *pair = PyTuple_Pack(2, PyTuple_Check(item) && PyTuple_GET_SIZE(item) > 1 ? PyTuple_GET_ITEM(item, 1) : Py_None,
                                      value ? value : Py_None);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        if (!pair || PyList_Append(refused, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(refused);
            return NULL;
        }
        Py_DECREF(pair);
    }
    return refused;
}

static Py_ssize_t pending_reports(Lane *self) {
    pthread_mutex_lock(&self->lock);
    Py_ssize_t n = self->n_reports;
    pthread_mutex_unlock(&self->lock);
    return n;
}

/* poll(timeout_ms) -> reports waiting for settle (librdkafka's callbacks run here, without the GIL) */
static PyObject *Lane_poll(Lane *self, PyObject *arg) {
    int timeout = (int)PyLong_AsLong(arg);
    if (timeout == -1 && PyErr_Occurred())
        return NULL;
    rd_kafka_t *k = self->rk;
    Py_BEGIN_ALLOW_THREADS
    rk.poll(k, timeout);
    Py_END_ALLOW_THREADS
    return PyLong_FromSsize_t(pending_reports(self));
}

/* settle() -> (counts, failures, tokens)
 *   counts:   [(slot, done, owed, acked, bytes, latency_sum, buckets, freed)] for each slot with reports
 *             (freed: the slot was closed and has nothing left in flight, so it may be handed out again)
 *   failures: [(slot, delivery, code)] reports of deliveries Kafka did not take (references kept: Python settles them)
 *   tokens:   [(token, code)] the Python tokens' reports (code 0: acknowledged) */
static PyObject *Lane_settle(Lane *self, PyObject *unused) {
    pthread_mutex_lock(&self->lock);
    msgstate_t *reports = self->reports, *last = self->last_report;
    self->reports = self->last_report = NULL;
    self->n_reports = 0;
    pthread_mutex_unlock(&self->lock);

    PyObject *counts = PyList_New(0), *failures = PyList_New(0), *tokens = PyList_New(0);
    msgstate_t *st = reports, *next = NULL;
    if (!counts || !failures || !tokens)
        goto fail_at;
    double now = now_s();
    for (; st; st = next) {
        next = st->next;
        int err = st->err;
        if (st->token) {
            PyObject *item = Py_BuildValue("(Oi)", st->token, err);
            if (!item || PyList_Append(tokens, item) < 0) {
                Py_XDECREF(item);
                goto fail_at;
            }
            Py_DECREF(item);
            free_state(st);
            continue;
        }
        slot_t *s = &self->slots[st->slot];
        if (!s->touched) {
            PyObject *index = PyLong_FromLong(st->slot);
            if (!index || PyList_Append(counts, index) < 0) {
                Py_XDECREF(index);
                goto fail_at;
            }
            Py_DECREF(index);
            s->touched = 1;
        }
        if (err) {
            PyObject *item = Py_BuildValue("(iNi)", st->slot, PyLong_FromVoidPtr(st->dlv), err);
            if (!item || PyList_Append(failures, item) < 0) {
                Py_XDECREF(item);
                goto fail_at;
            }
            Py_DECREF(item);
            s->in_flight--;
            s->done++;
            free(st); /* the delivery's reference goes with the failure to Python */
            continue;
        }
        s->in_flight--;
        s->done++;
        double latency = now - st->started;
        s->acked++;
        s->bytes += st->size;
        s->latency_sum += latency;
        Py_ssize_t b = 0;
        while (b < self->n_bounds && self->bounds[b] < latency)
            b++;
        if (b < self->n_bounds)
            s->buckets[b]++;
        if (st->dlv && s->open) {
            pn.update(st->dlv, PN_ACCEPTED);
            pn.settle(st->dlv);
        }
        if (s->open)
            s->owed++;
        free_state(st);
    }
    /* replace each touched slot's index by its counts, and reset them */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(counts); i++) {
        long index = PyLong_AsLong(PyList_GET_ITEM(counts, i));
        slot_t *s = &self->slots[index];
        PyObject *buckets = PyTuple_New(self->n_bounds);
        if (!buckets)
            goto fail;
        for (Py_ssize_t b = 0; b < self->n_bounds; b++)
            PyTuple_SET_ITEM(buckets, b, PyLong_FromLongLong(s->buckets[b]));
        s->touched = 0;
        if (!s->open && s->in_flight == 0)
            s->used = 0; /* free for the next link */
        PyObject *item = Py_BuildValue("(lLLLLdNO)", index, (long long)s->done, (long long)s->owed, (long long)s->acked,
                                       (long long)s->bytes, s->latency_sum, buckets, s->used ? Py_False : Py_True);
        if (!item)
            goto fail;
        PyList_SetItem(counts, i, item);
        s->done = s->owed = s->acked = s->bytes = 0;
        s->latency_sum = 0;
        memset(s->buckets, 0, self->n_bounds * sizeof(int64_t));
    }
    return Py_BuildValue("(NNN)", counts, failures, tokens);
fail_at: /* out of memory: the reports from st on are kept for the next call */
    if (st) {
        Py_ssize_t rest = 0;
        for (msgstate_t *r = st; r; r = r->next)
            rest++;
        pthread_mutex_lock(&self->lock);
        last->next = self->reports;
        if (!self->reports)
            self->last_report = last;
        self->reports = st;
        self->n_reports += rest;
        pthread_mutex_unlock(&self->lock);
    }
    for (Py_ssize_t t = 0; t < self->n_slots; t++)
        self->slots[t].touched = 0; /* their counts stay, and come with the slot's next report */
fail:
    Py_XDECREF(counts);
    Py_XDECREF(failures);
    Py_XDECREF(tokens);
    return NULL;
}

/* events() -> [(kind, code, fatal, text)]: librdkafka's errors (0), log lines (1, code = syslog level) and statistics (2) */
static PyObject *Lane_events(Lane *self, PyObject *unused) {
    pthread_mutex_lock(&self->lock);
    event_t *events = self->events;
    Py_ssize_t n = self->n_events;
    self->events = NULL;
    self->n_events = self->cap_events = 0;
    pthread_mutex_unlock(&self->lock);
    PyObject *out = PyList_New(n);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (out) { /* librdkafka's text is not promised to be UTF-8 */
            PyObject *item = Py_BuildValue("(iiiN)", events[i].kind, events[i].code, events[i].fatal,
                                           PyUnicode_DecodeUTF8(events[i].text, (Py_ssize_t)strlen(events[i].text), "replace"));
            if (item)
                PyList_SET_ITEM(out, i, item);
            else
                Py_CLEAR(out);
        }
        free(events[i].text);
    }
    free(events);
    return out;
}

static PyObject *Lane_fatal(Lane *self, void *closure) { return PyBool_FromLong(self->fatal); }

/* renew(): a new producer in place of one that failed fatally; what the old one held is purged (reported as failures) */
static PyObject *Lane_renew(Lane *self, PyObject *unused) {
    rd_kafka_t *fresh = new_producer(self);
    if (!fresh)
        return NULL;
    rd_kafka_t *old = self->rk;
    self->rk = fresh; /* produce runs with the GIL held: it sees one or the other */
    self->fatal = 0;
    /* flush and reachable use the handle with the GIL released (another thread may be inside
     * either now): the old one is emptied but destroyed only four replacements later. */
    rd_kafka_t *expired = NULL;
    if (self->n_retired == 4) {
        expired = self->retired[0];
        memmove(self->retired, self->retired + 1, 3 * sizeof(rd_kafka_t *));
        self->n_retired = 3;
    }
    self->retired[self->n_retired++] = old;
    Py_BEGIN_ALLOW_THREADS
    rk.purge(old, PURGE_F_QUEUE | PURGE_F_INFLIGHT);
    rk.flush(old, 5000); /* what it held is reported as failures: released */
    if (expired)
        rk.destroy(expired);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* flush(timeout_ms) -> records not acknowledged yet */
static PyObject *Lane_flush(Lane *self, PyObject *arg) {
    int timeout = (int)PyLong_AsLong(arg);
    if (timeout == -1 && PyErr_Occurred())
        return NULL;
    rd_kafka_t *k = self->rk;
    int left;
    Py_BEGIN_ALLOW_THREADS
    rk.flush(k, timeout);
    left = rk.outq_len(k);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(left);
}

/* reachable(timeout_ms) -> whether a broker answered a metadata request */
static PyObject *Lane_reachable(Lane *self, PyObject *arg) {
    int timeout = (int)PyLong_AsLong(arg);
    if (timeout == -1 && PyErr_Occurred())
        return NULL;
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_t *k = self->rk;
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = rk.metadata(k, 0, NULL, &md, timeout);
    Py_END_ALLOW_THREADS
    if (md)
        rk.metadata_destroy(md);
    return PyBool_FromLong(err == 0);
}

static PyMethodDef Lane_methods[] = {
    {"open_slot", (PyCFunction)Lane_open_slot, METH_NOARGS, "A slot for one link's deliveries."},
    {"close_slot", (PyCFunction)Lane_close_slot, METH_O, "The link closed: its later reports only count. True if the slot is free now."},
    {"produce", (PyCFunction)(void (*)(void))Lane_produce, METH_FASTCALL, "Hand one record to librdkafka."},
    {"produce_queued", (PyCFunction)(void (*)(void))Lane_produce_queued, METH_FASTCALL, "Hand a link's burst of records to librdkafka."},
    {"poll", (PyCFunction)Lane_poll, METH_O, "Serve librdkafka's callbacks (GIL released)."},
    {"settle", (PyCFunction)Lane_settle, METH_NOARGS, "Accept and settle what Kafka acknowledged."},
    {"events", (PyCFunction)Lane_events, METH_NOARGS, "librdkafka's errors, logs and statistics since the last call."},
    {"renew", (PyCFunction)Lane_renew, METH_NOARGS, "Replace a producer that failed fatally."},
    {"flush", (PyCFunction)Lane_flush, METH_O, "Wait for outstanding records."},
    {"reachable", (PyCFunction)Lane_reachable, METH_O, "Whether a broker answers."},
    {NULL}};

static PyGetSetDef Lane_getset[] = {{"fatal", (getter)Lane_fatal, NULL, "The producer failed fatally.", NULL}, {NULL}};

static PyTypeObject LaneType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "amqp_kafka_bridge._lane.Lane",
    .tp_basicsize = sizeof(Lane),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Lane_init,
    .tp_dealloc = (destructor)Lane_dealloc,
    .tp_methods = Lane_methods,
    .tp_getset = Lane_getset,
    .tp_doc = "One idempotent librdkafka producer whose reports settle AMQP deliveries in C.",
};

/* ---- the receiving side: transfers read below proton's Python dispatch ---- */

static PyObject *on_transfer_name;

/* ---- inlets: a receiving link's transfers converted in C ---- */

/* An Inlet stands for a receiving link in serve's table when the link's messages may be
 * converted in C (the raw converter): serve converts each transfer of the plain shape
 * (_plain_record.c) and appends (record, delivery, size, 0.0) to the link's queue, the list the
 * link produces from, as the link's on_transfer_at would. Every other transfer goes to
 * on_transfer_at (after close, too: the link releases it). */
typedef struct {
    PyObject_HEAD
    PyObject *link;      /* the InboundLink */
    PyObject *queued;    /* its list of (record, delivery, size, started) */
    PyObject *producing; /* the links with a queue in this burst */
    record_spec_t spec;
    PyObject *key_property; /* keeps spec.key_property's text alive */
    Py_ssize_t max_bytes;
    int closed;
} Inlet;

/* The spec's key property from ``key_property`` (a str or None; "" keys nothing, as in Python); 0, or -1 with TypeError. */
static int spec_key_property(record_spec_t *spec, PyObject *key_property) {
    spec->key_property = NULL;
    spec->key_property_len = 0;
    if (key_property == Py_None)
        return 0;
    if (!PyUnicode_Check(key_property)) {
        PyErr_SetString(PyExc_TypeError, "key_property is a str or None");
        return -1;
    }
    if (PyUnicode_GET_LENGTH(key_property) > 0)
        spec->key_property = PyUnicode_AsUTF8AndSize(key_property, &spec->key_property_len);
    return PyErr_Occurred() ? -1 : 0;
}

static int Inlet_init(Inlet *self, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"link", "queued", "producing", "topic", "key_property", "max_bytes", NULL};
    PyObject *link, *queued, *producing, *topic, *key_property = Py_None;
    Py_ssize_t max_bytes = PY_SSIZE_T_MAX;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!O!U|On", names, &link, &PyList_Type, &queued, &PyList_Type, &producing, &topic,
                                     &key_property, &max_bytes))
        return -1;
    if (spec_key_property(&self->spec, key_property) < 0)
        return -1;
    Py_INCREF(key_property); /* keeps the spec's text alive */
    Py_XSETREF(self->key_property, key_property);
    Py_INCREF(link);
    Py_XSETREF(self->link, link);
    Py_INCREF(queued);
    Py_XSETREF(self->queued, queued);
    Py_INCREF(producing);
    Py_XSETREF(self->producing, producing);
    Py_INCREF(topic);
    Py_XSETREF(self->spec.topic, topic);
    self->max_bytes = max_bytes;
    self->closed = 0;
    return 0;
}

/* The link holds its inlet and the inlet its link: the cycle is the collector's to break. */
static int Inlet_traverse(Inlet *self, visitproc visit, void *arg) {
    Py_VISIT(self->link);
    Py_VISIT(self->queued);
    Py_VISIT(self->producing);
    Py_VISIT(self->spec.topic);
    Py_VISIT(self->key_property);
    return 0;
}

static int Inlet_clear(Inlet *self) {
    Py_CLEAR(self->link);
    Py_CLEAR(self->queued);
    Py_CLEAR(self->producing);
    Py_CLEAR(self->spec.topic);
    Py_CLEAR(self->key_property);
    self->spec.key_property = NULL;
    self->closed = 1;
    return 0;
}

static void Inlet_dealloc(Inlet *self) {
    PyObject_GC_UnTrack(self);
    Inlet_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Inlet_close(Inlet *self, PyObject *unused) {
    self->closed = 1;
    Py_RETURN_NONE;
}

static PyMethodDef Inlet_methods[] = {{"close", (PyCFunction)Inlet_close, METH_NOARGS, "The link closed: its transfers go to on_transfer_at."},
                                      {NULL}};

static PyTypeObject InletType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "amqp_kafka_bridge._lane.Inlet",
    .tp_basicsize = sizeof(Inlet),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Inlet_init,
    .tp_dealloc = (destructor)Inlet_dealloc,
    .tp_traverse = (traverseproc)Inlet_traverse,
    .tp_clear = (inquiry)Inlet_clear,
    .tp_methods = Inlet_methods,
    .tp_doc = "A receiving link whose plain messages serve converts in C: Inlet(link, queued, producing, topic, key_property, max_bytes).",
};

static PyObject *zero_seconds; /* the ``started`` of a queued item the lane times itself */

/* A whole transfer of an inlet's delivery, in ``data``: queued as a record (1), or not of the plain
 * shape, too big or the link closed (0: on_transfer_at takes it), or -1 (out of memory). */
static int convert_into(Inlet *inlet, void *dlv, const char *data, size_t size) {
    if (inlet->closed || (Py_ssize_t)size > inlet->max_bytes)
        return 0;
    PyObject *record = plain_record((const uint8_t *)data, size, &inlet->spec);
    if (!record)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *value = PyTuple_GET_ITEM(record, 1);
    Py_ssize_t value_size = value == Py_None ? 0 : PyBytes_GET_SIZE(value);
    int presettled = pn.delivery_settled(dlv);
    PyObject *item = Py_BuildValue("(NNnO)", record, PyLong_FromVoidPtr(presettled ? NULL : dlv), value_size, zero_seconds);
    if (!item)
        return -1;
    if ((PyList_GET_SIZE(inlet->queued) == 0 && PyList_Append(inlet->producing, inlet->link) < 0) || PyList_Append(inlet->queued, item) < 0) {
        Py_DECREF(item);
        return -1;
    }
    Py_DECREF(item);
    if (presettled)
        pn.settle(dlv); /* at-most-once, as the sender asked; credit still waits for the ack */
    else
        pn.incref(dlv); /* the link's, until Kafka's report settles it */
    return 1;
}

static char *scratch; /* serve's read buffer (the reactor thread's) */
static size_t scratch_size;

/* serve(collector, receiving) -> (event, served)
 *
 * Serves the delivery events at the head of the reactor's collector (``collector``, a
 * pn_collector_t address) whose link is a receiving link in ``receiving`` (link address ->
 * target: an Inlet, or an object with on_transfer_at): an aborted transfer is settled; a partial
 * one waits for its next frame; a whole one is read and either converted into the Inlet's queue
 * (see convert_into) or handed, with its delivery referenced, to ``on_transfer_at(address, data,
 * presettled)``, which owns that reference from then on. Stops at the first other event and
 * returns its address (0: the collector is empty) for Python's dispatch, and how many it served.
 * An exception from a target is raised with its event already popped. */
static PyObject *serve(PyObject *module, PyObject *args) {
    PyObject *collector_address, *receiving;
    if (!PyArg_ParseTuple(args, "OO!", &collector_address, &PyDict_Type, &receiving))
        return NULL;
    void *collector = PyLong_AsVoidPtr(collector_address);
    if (!collector) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "serve needs the address of the reactor's pn_collector_t, not 0");
        return NULL;
    }
    Py_ssize_t served = 0;
    void *event;
    while ((event = pn.collector_peek(collector))) {
        if (pn.event_type(event) != pn_delivery_event)
            break;
        void *dlv = pn.event_delivery(event);
        void *link = pn.delivery_link(dlv);
        PyObject *key = PyLong_FromVoidPtr(link);
        if (!key)
            return NULL;
        PyObject *target = PyDict_GetItemWithError(receiving, key);
        Py_DECREF(key);
        if (!target) {
            if (PyErr_Occurred())
                return NULL;
            break; /* not a link of ours, or one the bridge sends on: Python's dispatch */
        }
        PyObject *result = Py_None;
        Py_INCREF(result);
        if (pn.delivery_aborted(dlv)) {
            pn.settle(dlv);
        } else if (!pn.delivery_partial(dlv) && pn.delivery_readable(dlv)) {
            size_t pending = pn.delivery_pending(dlv);
            if (pending > scratch_size) {
                char *grown = realloc(scratch, pending);
                if (!grown) {
                    Py_DECREF(result);
                    return PyErr_NoMemory(); /* the event stays: nothing is lost */
                }
                scratch = grown;
                scratch_size = pending;
            }
            ssize_t got = pending ? pn.link_recv(link, scratch, pending) : 0;
            pn.link_advance(link);
            size_t size = got > 0 ? (size_t)got : 0;
            Inlet *inlet = Py_TYPE(target) == &InletType ? (Inlet *)target : NULL;
            int converted = inlet ? convert_into(inlet, dlv, scratch, size) : 0;
            PyObject *handler = inlet ? inlet->link : target;
            if (converted == 0) {
                PyObject *data = PyBytes_FromStringAndSize(scratch, (Py_ssize_t)size);
                pn.incref(dlv);
                PyObject *address = PyLong_FromVoidPtr(dlv);
                PyObject *presettled = PyBool_FromLong(pn.delivery_settled(dlv));
                Py_DECREF(result);
                if (!handler)
                    PyErr_SetString(PyExc_RuntimeError, "an inlet without its link"); /* cleared: cannot be in the table */
                result = data && address && handler ? PyObject_CallMethodObjArgs(handler, on_transfer_name, address, data, presettled, NULL) : NULL;
                Py_XDECREF(address);
                Py_DECREF(presettled);
                Py_XDECREF(data);
            } else if (converted < 0) {
                Py_CLEAR(result);
            }
        }
        pn.collector_pop(collector);
        served++;
        if (!result)
            return NULL;
        Py_DECREF(result);
    }
    return Py_BuildValue("(Nn)", PyLong_FromVoidPtr(event), served);
}

/* plain_record(data, topic, key_property) -> the record's fields as a tuple, or None (Python converts it) */
static PyObject *plain_record_py(PyObject *module, PyObject *args) {
    Py_buffer data;
    PyObject *topic, *key_property;
    if (!PyArg_ParseTuple(args, "y*UO", &data, &topic, &key_property))
        return NULL;
    record_spec_t spec = {topic, NULL, 0};
    PyObject *record = spec_key_property(&spec, key_property) < 0 ? NULL : plain_record((const uint8_t *)data.buf, (size_t)data.len, &spec);
    PyBuffer_Release(&data);
    if (!record && !PyErr_Occurred())
        Py_RETURN_NONE;
    return record;
}

static PyObject *load(PyObject *module, PyObject *args) {
    const char *rdkafka_path, *proton_path;
    if (!PyArg_ParseTuple(args, "ssi", &rdkafka_path, &proton_path, &pn_delivery_event))
        return NULL;
    if (!loaded && resolve(rdkafka_path, proton_path) < 0)
        return NULL;
    return PyUnicode_FromFormat("%x", rk.version());
}

static PyMethodDef module_methods[] = {{"load", load, METH_VARARGS, "Resolve librdkafka's and proton-c's functions from these files."},
                                       {"serve", serve, METH_VARARGS, "Serve the receiving links' delivery events at the head of a collector."},
                                       {"plain_record", plain_record_py, METH_VARARGS, "The record of a plain-shaped message, or None."},
                                       {NULL}};

static struct PyModuleDef lane_module = {PyModuleDef_HEAD_INIT, "_lane", "The bridge's native produce lane.", -1, module_methods};

PyMODINIT_FUNC PyInit__lane(void) {
    if (PyType_Ready(&LaneType) < 0 || PyType_Ready(&InletType) < 0)
        return NULL;
    zero_seconds = PyFloat_FromDouble(0.0);
    if (!zero_seconds)
        return NULL;
    on_transfer_name = PyUnicode_InternFromString("on_transfer_at");
    if (!on_transfer_name)
        return NULL;
    PyObject *m = PyModule_Create(&lane_module);
    if (!m)
        return NULL;
    Py_INCREF(&LaneType);
    Py_INCREF(&InletType);
    if (PyModule_AddObject(m, "Lane", (PyObject *)&LaneType) < 0 || PyModule_AddObject(m, "Inlet", (PyObject *)&InletType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
