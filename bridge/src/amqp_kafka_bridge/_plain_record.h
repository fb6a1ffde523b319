/* The plain shape of an AMQP message converted to a Kafka record in C (raw converter): see _plain_record.c. */
#ifndef AMQP_KAFKA_BRIDGE_PLAIN_RECORD_H
#define AMQP_KAFKA_BRIDGE_PLAIN_RECORD_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    PyObject *topic;          /* str: the record's topic */
    const char *key_property; /* UTF-8 name of the application property that keys records, or NULL */
    Py_ssize_t key_property_len;
} record_spec_t;

/* The record (a 7-tuple in KafkaRecord's field order) for the encoded message ``buf``; NULL without an
 * exception when the message is not of the plain shape or its conversion fails (Python converts it then,
 * and says what is wrong); NULL with an exception only when out of memory. */
PyObject *plain_record(const uint8_t *buf, size_t size, const record_spec_t *spec);

#endif
