/* AMQP message -> Kafka record in C for the common shape: the record the raw converter gives, byte for byte.
 *
 * With the native lane's serve and produce in C, decoding each message
 * (amqp_message_model.decoding.read_plain) and converting it (RawConverter.to_record) in Python
 * were a third of the reactor's time at capacity. This file does both for the messages read_plain
 * reads, with the same rules (converters.py: key, partition, amqp.* headers, application
 * properties as headers, creation time as the timestamp), so the record is the one Python would
 * make; tests/bridge/test_plain_record.py compares the two over the hostile corpus and generated
 * messages. Every other case gives NULL and Python converts the message: one read_plain leaves to
 * proton, a wrongly typed annotation (Python names the problem), a section twice, or
 * application properties with a name twice (a dict keeps the first place and the last value). */
#include "_plain_record.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { V_NULL, V_STR, V_SYM, V_BIN, V_LONG, V_DOUBLE, V_BOOL };

typedef struct {
    int kind;
    const uint8_t *p; /* str, sym, bin */
    size_t n;
    int64_t i; /* long, bool */
    double d;
} value_t;

typedef struct {
    const uint8_t *name;
    size_t name_len;
    value_t value;
} property_t;

#define MAX_PROPERTIES 64
#define KAFKA_MAX_AHEAD_MS 3600000LL /* converters.KAFKA_MAX_AHEAD_MS */

typedef struct {
    const uint8_t *buf;
    size_t size;
    int body_kind; /* V_NULL: none */
    const uint8_t *body;
    size_t body_len;
    int has_key, has_partition;
    value_t key, partition;
    value_t id, subject, correlation_id, content_type; /* V_NULL when absent */
    int has_creation;
    int64_t creation_ms;
    int n_properties; /* -1: no application-properties section */
    property_t properties[MAX_PROPERTIES];
} plain_t;

static uint32_t be32(const uint8_t *p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }

static int64_t be64(const uint8_t *p) { return (int64_t)(((uint64_t)be32(p) << 32) | be32(p + 4)); }

/* What Python's strict UTF-8 decoder accepts (read_plain decodes every string it reads). */
static int valid_utf8(const uint8_t *p, size_t n) {
    size_t k = 0;
    while (k < n && p[k] < 0x80)
        k++;
    if (k == n)
        return 1;
    PyObject *text = PyUnicode_DecodeUTF8((const char *)p, (Py_ssize_t)n, "strict");
    if (!text) {
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(text);
    return 1;
}

static int ascii(const uint8_t *p, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (p[k] >= 0x80)
            return 0;
    return 1;
}

/* A scalar as decoding._value reads it; 0, or -1 when it is not one of those (or cut short). */
static int read_value(const plain_t *m, size_t *pos, value_t *v) {
    const uint8_t *buf = m->buf;
    size_t at = *pos, size = m->size, len;
    if (at >= size)
        return -1;
    uint8_t code = buf[at];
    memset(v, 0, sizeof *v);
    switch (code) {
    case 0x40:
        v->kind = V_NULL;
        *pos = at + 1;
        return 0;
    case 0x41:
    case 0x42:
        v->kind = V_BOOL;
        v->i = code == 0x41;
        *pos = at + 1;
        return 0;
    case 0x56:
        if (at + 1 >= size)
            return -1;
        v->kind = V_BOOL;
        v->i = buf[at + 1] != 0;
        *pos = at + 2;
        return 0;
    case 0x55:
        if (at + 1 >= size)
            return -1;
        v->kind = V_LONG;
        v->i = (int8_t)buf[at + 1];
        *pos = at + 2;
        return 0;
    case 0x81:
    case 0x82:
        if (at + 9 > size)
            return -1;
        if (code == 0x81) {
            v->kind = V_LONG;
            v->i = be64(buf + at + 1);
        } else {
            uint64_t bits = (uint64_t)be64(buf + at + 1);
            v->kind = V_DOUBLE;
            memcpy(&v->d, &bits, sizeof v->d);
        }
        *pos = at + 9;
        return 0;
    case 0xA0:
    case 0xA1:
    case 0xA3:
        if (at + 1 >= size)
            return -1;
        len = buf[at + 1];
        v->p = buf + at + 2;
        break;
    case 0xB0:
    case 0xB1:
    case 0xB3:
        if (at + 5 > size)
            return -1;
        len = be32(buf + at + 1);
        v->p = buf + at + 5;
        break;
    default:
        return -1;
    }
    if ((size_t)(v->p - buf) + len > size)
        return -1; /* cut short: read_plain's final length check fails too */
    v->n = len;
    if (code == 0xA0 || code == 0xB0) {
        v->kind = V_BIN;
    } else if (code == 0xA1 || code == 0xB1) {
        if (!valid_utf8(v->p, len))
            return -1;
        v->kind = V_STR;
    } else {
        if (!ascii(v->p, len))
            return -1;
        v->kind = V_SYM;
    }
    *pos = (size_t)(v->p - buf) + len;
    return 0;
}

/* decoding._compound: (count, first element, end) of the list or map at *pos. */
static int compound(const plain_t *m, size_t pos, int map_codes, size_t *count, size_t *first, size_t *end) {
    const uint8_t *buf = m->buf;
    if (pos >= m->size)
        return -1;
    uint8_t code = buf[pos];
    if (code == 0x45 && !map_codes) {
        *count = 0;
        *first = *end = pos + 1;
    } else if (code == (map_codes ? 0xC1 : 0xC0)) {
        if (pos + 2 >= m->size)
            return -1;
        *count = buf[pos + 2];
        *first = pos + 3;
        *end = pos + 2 + buf[pos + 1];
    } else if (code == (map_codes ? 0xD1 : 0xD0)) {
        if (pos + 9 > m->size)
            return -1;
        *count = be32(buf + pos + 5);
        *first = pos + 9;
        *end = pos + 5 + (size_t)be32(buf + pos + 1);
    } else {
        return -1;
    }
    return *end > m->size ? -1 : 0;
}

/* sections.value_end: where the value at pos ends, from its constructor alone. */
static int value_end(const plain_t *m, size_t pos, int depth, size_t *end) {
    if (pos >= m->size)
        return -1;
    uint8_t code = m->buf[pos];
    if (code == 0x00) {
        size_t descriptor_end;
        if (depth >= 4 || value_end(m, pos + 1, depth + 1, &descriptor_end) < 0)
            return -1;
        return value_end(m, descriptor_end, depth + 1, end);
    }
    static const int fixed[16] = {-1, -1, -1, -1, 0, 1, 2, 4, 8, 16, -1, -1, -1, -1, -1, -1};
    int nibble = code >> 4;
    if (fixed[nibble] >= 0) {
        *end = pos + 1 + (size_t)fixed[nibble];
    } else if (nibble == 0xA || nibble == 0xC || nibble == 0xE) {
        if (pos + 1 >= m->size)
            return -1;
        *end = pos + 2 + m->buf[pos + 1];
    } else if (nibble == 0xB || nibble == 0xD || nibble == 0xF) {
        if (pos + 5 > m->size)
            return -1;
        *end = pos + 5 + (size_t)be32(m->buf + pos + 1);
    } else {
        return -1;
    }
    return *end > m->size ? -1 : 0;
}

static int same_text(const value_t *v, const char *text) {
    size_t n = strlen(text);
    return (v->kind == V_STR || v->kind == V_SYM) && v->n == n && memcmp(v->p, text, n) == 0;
}

/* A message annotation: only the bridge's key and partition are kept (a dict: the last one counts). */
static int on_annotation(plain_t *m, const value_t *key, const value_t *value) {
    if (same_text(key, "x-opt-bridge.key")) {
        m->has_key = 1;
        m->key = *value;
    } else if (same_text(key, "x-opt-bridge.partition")) {
        m->has_partition = 1;
        m->partition = *value;
    }
    return 0;
}

/* An application property: read_plain takes string names and no symbol values. */
static int on_property(plain_t *m, const value_t *key, const value_t *value) {
    if (key->kind != V_STR || value->kind == V_SYM || m->n_properties == MAX_PROPERTIES)
        return -1;
    for (int j = 0; j < m->n_properties; j++)
        if (m->properties[j].name_len == key->n && memcmp(m->properties[j].name, key->p, key->n) == 0)
            return -1; /* a name twice: Python's dict decides */
    m->properties[m->n_properties++] = (property_t){key->p, key->n, *value};
    return 0;
}

/* decoding._map: each of the map's count / 2 entries to ``on_entry``, then the map must end where it said. */
static int read_map(plain_t *m, size_t *pos, int (*on_entry)(plain_t *, const value_t *, const value_t *)) {
    size_t count, at, end;
    if (compound(m, *pos, 1, &count, &at, &end) < 0)
        return -1;
    for (size_t k = 0; k < count / 2; k++) {
        value_t key, value;
        if (read_value(m, &at, &key) < 0 || read_value(m, &at, &value) < 0 || on_entry(m, &key, &value) < 0)
            return -1;
    }
    if (at != end)
        return -1;
    *pos = end;
    return 0;
}

/* decoding._properties: the string ids and subject, the content type and the creation time. */
static int read_properties(plain_t *m, size_t *pos) {
    size_t count, at, end;
    if (compound(m, *pos, 0, &count, &at, &end) < 0)
        return -1;
    for (size_t index = 0; index < count; index++) {
        if (at >= m->size)
            return -1;
        uint8_t code = m->buf[at];
        if (code == 0x40) {
            at++;
            continue;
        }
        if (index == 0 || index == 3 || index == 5) {
            value_t *field = index == 0 ? &m->id : index == 3 ? &m->subject : &m->correlation_id;
            if ((code != 0xA1 && code != 0xB1) || read_value(m, &at, field) < 0)
                return -1;
        } else if (index == 6) {
            if ((code != 0xA3 && code != 0xB3) || read_value(m, &at, &m->content_type) < 0)
                return -1;
        } else if (index == 9) {
            if (code != 0x83 || at + 9 > m->size)
                return -1;
            m->has_creation = 1;
            m->creation_ms = be64(m->buf + at + 1);
            at += 9;
        } else if (value_end(m, at, 0, &at) < 0) {
            return -1;
        }
    }
    if (at != end)
        return -1;
    *pos = end;
    return 0;
}

/* decoding._read: 0 when buf is of the plain shape (and each section comes once). */
static int read_plain(plain_t *m) {
    size_t pos = 0, skip_count, skip_first;
    unsigned seen = 0;
    int body_seen = 0;
    while (pos < m->size) {
        if (pos + 2 >= m->size || m->buf[pos] != 0x00 || m->buf[pos + 1] != 0x53)
            return -1;
        uint8_t section = m->buf[pos + 2];
        pos += 3;
        if (body_seen || section < 0x70 || section > 0x77 || (seen & (1u << (section - 0x70))))
            return -1; /* after the body, not a section read_plain reads, or a section twice */
        seen |= 1u << (section - 0x70);
        value_t body;
        switch (section) {
        case 0x75: /* data */
        case 0x77: /* amqp-value: a string or binary */
            if (read_value(m, &pos, &body) < 0 || !(body.kind == V_BIN || (section == 0x77 && body.kind == V_STR)))
                return -1;
            m->body_kind = body.kind;
            m->body = body.p;
            m->body_len = body.n;
            body_seen = 1;
            break;
        case 0x73:
            if (read_properties(m, &pos) < 0)
                return -1;
            break;
        case 0x74:
            m->n_properties = 0;
            if (read_map(m, &pos, on_property) < 0)
                return -1;
            break;
        case 0x72:
            if (read_map(m, &pos, on_annotation) < 0)
                return -1;
            break;
        case 0x70: /* header, delivery annotations: skipped */
        case 0x71:
            if (compound(m, pos, section == 0x71, &skip_count, &skip_first, &pos) < 0)
                return -1;
            break;
        default: /* amqp-sequence */
            return -1;
        }
    }
    return pos == m->size ? 0 : -1;
}

static PyObject *bytes_of(const value_t *v) { return PyBytes_FromStringAndSize((const char *)v->p, (Py_ssize_t)v->n); }

/* values.value_to_bytes for a header; str() of the value for a key (``as_key``: True/False, nan). */
static PyObject *value_bytes(const value_t *v, int as_key) {
    switch (v->kind) {
    case V_NULL:
        return PyBytes_FromStringAndSize("", 0);
    case V_BOOL:
        return PyBytes_FromString(as_key ? (v->i ? "True" : "False") : (v->i ? "true" : "false"));
    case V_LONG: {
        char digits[24];
        return PyBytes_FromStringAndSize(digits, snprintf(digits, sizeof digits, "%lld", (long long)v->i));
    }
    case V_DOUBLE: {
        if (!as_key && isnan(v->d))
            return PyBytes_FromString("NaN");
        char *text = PyOS_double_to_string(v->d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL); /* repr: inf, -inf, nan */
        if (!text)
            return NULL;
        PyObject *out = PyBytes_FromString(text);
        PyMem_Free(text);
        return out;
    }
    default: /* str, sym, bin: their bytes (UTF-8, ASCII) */
        return bytes_of(v);
    }
}

static int add_header(PyObject *headers, const char *name, PyObject *value) {
    if (!value)
        return -1;
    PyObject *pair = Py_BuildValue("(sN)", name, value);
    if (!pair)
        return -1;
    int rc = PyList_Append(headers, pair);
    Py_DECREF(pair);
    return rc;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)(((double)ts.tv_sec + (double)ts.tv_nsec * 1e-9) * 1000.0);
}

static PyObject *record_of(const plain_t *m, const record_spec_t *spec) {
    PyObject *key = NULL, *partition = NULL, *headers = NULL, *timestamp = NULL, *value = NULL, *list = NULL;
    /* converters._key_of */
    if (m->has_key) {
        if (m->key.kind != V_STR && m->key.kind != V_SYM && m->key.kind != V_BIN)
            return NULL; /* Python names the wrong type */
        key = bytes_of(&m->key);
    } else if (spec->key_property && m->n_properties > 0) {
        for (int j = 0; j < m->n_properties; j++) {
            const property_t *p = &m->properties[j];
            if (p->name_len == (size_t)spec->key_property_len && memcmp(p->name, spec->key_property, p->name_len) == 0) {
                key = p->value.kind == V_NULL ? (Py_INCREF(Py_None), Py_None) : value_bytes(&p->value, 1);
                break;
            }
        }
    }
    if (!key) {
        if (PyErr_Occurred())
            return NULL;
        key = Py_None;
        Py_INCREF(key);
    }
    /* converters._partition_of */
    if (m->has_partition) {
        if (m->partition.kind != V_LONG || m->partition.i < 0)
            goto fail;
        partition = PyLong_FromLongLong(m->partition.i);
    } else {
        partition = Py_None;
        Py_INCREF(partition);
    }
    /* converters._record_headers: the message fields, then the application properties */
    list = PyList_New(0);
    if (!partition || !list)
        goto fail;
    const struct {
        const char *name;
        const value_t *value;
    } fields[] = {{"amqp.subject", &m->subject}, {"amqp.message-id", &m->id}, {"amqp.correlation-id", &m->correlation_id}};
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) /* strings, when not empty */
        if (fields[f].value->kind == V_STR && fields[f].value->n && add_header(list, fields[f].name, bytes_of(fields[f].value)) < 0)
            goto fail;
    if (m->content_type.kind == V_SYM && m->content_type.n && !(m->content_type.n == 4 && memcmp(m->content_type.p, "None", 4) == 0) &&
        add_header(list, "amqp.content-type", bytes_of(&m->content_type)) < 0)
        goto fail; /* values.content_type_of: proton reports an absent one as "None" */
    for (int j = 0; j < m->n_properties; j++) {
        const property_t *p = &m->properties[j];
        PyObject *header = value_bytes(&p->value, 0);
        PyObject *name = header ? PyUnicode_DecodeUTF8((const char *)p->name, (Py_ssize_t)p->name_len, "strict") : NULL;
        PyObject *pair = name ? Py_BuildValue("(NN)", name, header) : NULL;
        if (!name)
            Py_XDECREF(header);
        if (!pair || PyList_Append(list, pair) < 0) {
            Py_XDECREF(pair);
            goto fail;
        }
        Py_DECREF(pair);
    }
    headers = PyList_AsTuple(list);
    /* converters._timestamp_of: creation_time (ms / 1000.0) unless Kafka would refuse it */
    if (m->has_creation && m->creation_ms != 0) {
        double ms = (double)m->creation_ms / 1000.0 * 1000.0; /* int(creation_time * 1000), as Python computes it */
        if (ms < -9.2e18)
            goto fail; /* below any int64 */
        if (ms < 9.2e18 && (int64_t)ms <= now_ms() + KAFKA_MAX_AHEAD_MS)
            timestamp = PyLong_FromLongLong((int64_t)ms);
        else {
            timestamp = Py_None;
            Py_INCREF(timestamp);
        }
    } else {
        timestamp = Py_None;
        Py_INCREF(timestamp);
    }
    /* RawConverter.record_value: the binary or the string's UTF-8, as it is */
    if (m->body_kind == V_NULL) {
        value = Py_None;
        Py_INCREF(value);
    } else {
        value = PyBytes_FromStringAndSize((const char *)m->body, (Py_ssize_t)m->body_len);
    }
    if (!headers || !timestamp || !value)
        goto fail;
    Py_DECREF(list);
    return Py_BuildValue("(ONNNONN)", spec->topic, value, key, partition, Py_None, headers, timestamp);
fail:
    Py_XDECREF(key);
    Py_XDECREF(partition);
    Py_XDECREF(list);
    Py_XDECREF(headers);
    Py_XDECREF(timestamp);
    Py_XDECREF(value);
    return NULL;
}

PyObject *plain_record(const uint8_t *buf, size_t size, const record_spec_t *spec) {
    plain_t m;
    memset(&m, 0, offsetof(plain_t, properties));
    m.buf = buf;
    m.size = size;
    m.n_properties = -1;
    if (read_plain(&m) < 0)
        return NULL;
    return record_of(&m, spec);
}
