"""AMQP message <-> Spark row, as pure functions (no I/O, no Spark session).

Source direction: every AMQP body type becomes the binary ``body`` column without raising:

=========================================  ===========================================
AMQP body                                  ``body`` column
=========================================  ===========================================
data section(s)                            the bytes, as sent
amqp-value binary                          the bytes
amqp-value string                          UTF-8 bytes
amqp-value null / no body                  null
amqp-value number, bool, list, map, ...    UTF-8 JSON (binary as base64, timestamps as
amqp-sequence                              epoch ms, UUIDs and symbols as strings)
=========================================  ===========================================

Application property values become strings the same way (strings as they are).

Sink direction: a string ``body`` is sent as an amqp-value string (a JMS TextMessage), a
binary one as a data section (a JMS BytesMessage).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any

from proton import Described, Message, symbol

UTC = dt.timezone.utc

SOURCE_COLUMNS = (
    "body",
    "address",
    "partition",
    "offset",
    "message_id",
    "correlation_id",
    "subject",
    "content_type",
    "creation_time",
    "received_time",
    "application_properties",
    "durable",
    "priority",
    "delivery_count",
)

SOURCE_SCHEMA_DDL = (
    "body BINARY, address STRING, partition INT, offset BIGINT, message_id STRING, correlation_id STRING, "
    "subject STRING, content_type STRING, creation_time TIMESTAMP, received_time TIMESTAMP, "
    "application_properties MAP<STRING, STRING>, durable BOOLEAN, priority INT, delivery_count BIGINT"
)

SINK_COLUMNS = frozenset({"body", "address", "subject", "message_id", "correlation_id", "content_type", "application_properties"})


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(_jsonable(k)) if not isinstance(k, str) else k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Described):
        return {"descriptor": _jsonable(value.descriptor), "value": _jsonable(value.value)}
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)  # JSON has no NaN/Infinity
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def body_to_bytes(body: Any) -> bytes | None:
    """The ``body`` column for any AMQP body (see the module table)."""
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(_jsonable(body), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def value_to_str(value: Any) -> str | None:
    """An application property value as a string (strings unchanged, others as JSON text)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value) if not isinstance(value, float) or value == value else "NaN"
    return json.dumps(_jsonable(value), separators=(",", ":"), ensure_ascii=False)


def _id_to_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return str(value)


def _epoch_ms_to_datetime(seconds: float | None) -> dt.datetime | None:
    # proton gives creation_time as float seconds since the epoch; 0 means "not set".
    if not seconds:
        return None
    return dt.datetime.fromtimestamp(seconds, tz=UTC)


def _content_type(message: Message) -> str | None:
    # proton 0.40 reports an absent content type as symbol('None').
    value = message.content_type
    return None if value is None or value == "None" or value == "" else str(value)


def bare_message_digest(encoded: bytes) -> bytes:
    """A digest of what the sender sent, ignoring what a broker changes on redelivery.

    The header (delivery count, first-acquirer, ...) and the delivery and message
    annotations are left out, so a redelivered message has the digest of its first delivery.
    """
    import hashlib

    message = decode_message(encoded)
    message.delivery_count = 0
    message.first_acquirer = False
    message.durable = False
    message.priority = 4
    message.ttl = 0
    message.instructions = None
    message.annotations = None
    return hashlib.blake2b(message.encode(), digest_size=16).digest()


def decode_message(encoded: bytes) -> Message:
    message = Message()
    message.decode(encoded)
    return message


def message_to_row(message: Message, address: str, partition: int, offset: int, received_ms: int) -> tuple:
    """One source row, in :data:`SOURCE_COLUMNS` order."""
    props = message.properties or {}
    return (
        body_to_bytes(message.body),
        address,
        partition,
        offset,
        _id_to_str(message.id),
        _id_to_str(message.correlation_id),
        message.subject,
        _content_type(message),
        _epoch_ms_to_datetime(message.creation_time),
        dt.datetime.fromtimestamp(received_ms / 1000.0, tz=UTC),
        {str(k): value_to_str(v) for k, v in props.items()},
        bool(message.durable),
        int(message.priority),
        int(message.delivery_count),
    )


def arrow_schema():  # -> pyarrow.Schema; pyarrow is imported lazily (executors only)
    """The Arrow schema equal to :data:`SOURCE_SCHEMA_DDL` (Spark checks that they match exactly)."""
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("body", pa.binary()),
            ("address", pa.string()),
            ("partition", pa.int32()),
            ("offset", pa.int64()),
            ("message_id", pa.string()),
            ("correlation_id", pa.string()),
            ("subject", pa.string()),
            ("content_type", pa.string()),
            ("creation_time", ts),
            ("received_time", ts),
            ("application_properties", pa.map_(pa.string(), pa.string())),
            ("durable", pa.bool_()),
            ("priority", pa.int32()),
            ("delivery_count", pa.int64()),
        ]
    )


def records_to_arrow(records: list[tuple[int, int, bytes]], address: str, partition: int):  # -> pyarrow.RecordBatch
    """Log records ``(offset, received_ms, encoded message)`` as one Arrow record batch.

    Same values as :func:`message_to_row`, built column-wise: about twice as fast into
    Spark as tuples for large batches.
    """
    import pyarrow as pa

    cols: dict[str, list] = {name: [] for name in SOURCE_COLUMNS}
    for offset, received_ms, payload in records:
        m = decode_message(payload)
        props = m.properties or {}
        cols["body"].append(body_to_bytes(m.body))
        cols["offset"].append(offset)
        cols["message_id"].append(_id_to_str(m.id))
        cols["correlation_id"].append(_id_to_str(m.correlation_id))
        cols["subject"].append(m.subject)
        cols["content_type"].append(_content_type(m))
        cols["creation_time"].append(int(m.creation_time * 1_000_000) if m.creation_time else None)
        cols["received_time"].append(received_ms * 1000)
        cols["application_properties"].append([(str(k), value_to_str(v)) for k, v in props.items()])
        cols["durable"].append(bool(m.durable))
        cols["priority"].append(int(m.priority))
        cols["delivery_count"].append(int(m.delivery_count))
    n = len(records)
    cols["address"] = [address] * n
    cols["partition"] = [partition] * n
    schema = arrow_schema()
    return pa.RecordBatch.from_arrays([pa.array(cols[f.name], type=f.type) for f in schema], schema=schema)


def row_to_message(row: Mapping[str, Any], default_address: str | None) -> Message:
    """A sink row (``body`` required; see :data:`SINK_COLUMNS`) as a proton message.

    Raises ``ValueError`` naming the problem for a body that is neither string nor binary.
    """
    body = row.get("body")
    if body is not None and not isinstance(body, (str, bytes, bytearray)):
        raise ValueError(f"the 'body' column must be string or binary, got {type(body).__name__}: cast it first")
    message = Message(body=bytes(body) if isinstance(body, bytearray) else body, durable=True)
    address = row.get("address") or default_address
    if address:
        message.address = address
    if row.get("subject") is not None:
        message.subject = row["subject"]
    if row.get("message_id") is not None:
        message.id = row["message_id"]
    if row.get("correlation_id") is not None:
        message.correlation_id = row["correlation_id"]
    if row.get("content_type") is not None:
        message.content_type = symbol(row["content_type"])
    props = row.get("application_properties")
    if props:
        message.properties = {str(k): v for k, v in dict(props).items()}
    return message
