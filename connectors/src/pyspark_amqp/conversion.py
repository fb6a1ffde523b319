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

Application property values, message annotation values (the ``message_annotations``
column, with ``includeAnnotations``) and ids become strings by the rules of
:mod:`amqp_message_model.values`, the same rules the bridge uses for Kafka headers. An
annotation key is a symbol (kept as it is) or a ulong (decimal digits).

Hostile input never fails the stream. A message whose sections proton cannot turn into
Python values still becomes one row: a body nested deeper than Python's recursion limit
(e.g. an AMQP list 10,000 deep) is passed as its AMQP encoding, an amqp-value string that
is not UTF-8 as its bytes as sent, and a message that is not well-formed AMQP (a body
section cut short, which proton would read as no body) as the bytes that came;
any other field that cannot be read (a subject that is not UTF-8) is null. A
``creation_time`` outside years 1..9999 (what Spark and Python can represent) is null.

Sink direction: a string ``body`` is sent as an amqp-value string (a JMS TextMessage), a
binary one as a data section (a JMS BytesMessage).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from amqp_message_model.sections import body_as_sent
from amqp_message_model.values import body_to_bytes, content_type_of, creation_seconds, id_to_text, value_to_text
from proton import Message, symbol

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

ANNOTATIONS_COLUMN = "message_annotations"


def source_schema_ddl(include_annotations: bool = False) -> str:
    """The source's schema: the default columns, plus ``message_annotations`` when asked for (like Kafka's ``includeHeaders``)."""
    return SOURCE_SCHEMA_DDL + (f", {ANNOTATIONS_COLUMN} MAP<STRING, STRING>" if include_annotations else "")


SINK_COLUMNS = frozenset({"body", "address", "subject", "message_id", "correlation_id", "content_type", "application_properties"})


def _datetime(seconds: float | None) -> dt.datetime | None:
    seconds = creation_seconds(seconds)
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, tz=UTC)


def message_to_row(message: Message, address: str, partition: int, offset: int, received_ms: int) -> tuple:
    """One source row, in :data:`SOURCE_COLUMNS` order."""
    props = message.properties or {}
    return (
        body_to_bytes(message.body),
        address,
        partition,
        offset,
        id_to_text(message.id),
        id_to_text(message.correlation_id),
        message.subject,
        content_type_of(message),
        _datetime(message.creation_time),
        dt.datetime.fromtimestamp(received_ms / 1000.0, tz=UTC),
        {str(k): value_to_text(v) for k, v in props.items()},
        bool(message.durable),
        int(message.priority),
        int(message.delivery_count),
    )


def arrow_schema(include_annotations: bool = False):  # -> pyarrow.Schema; pyarrow is imported lazily (executors only)
    """The Arrow schema equal to :func:`source_schema_ddl` (Spark checks that they match exactly)."""
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    extra = [(ANNOTATIONS_COLUMN, pa.map_(pa.string(), pa.string()))] if include_annotations else []
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
            *extra,
        ]
    )


_UNREAD = object()


def _guarded(read: Any) -> Any:
    try:
        return read()
    except Exception:  # noqa: BLE001 - a field proton cannot read (e.g. not UTF-8) is null
        return None


def _payload_columns(payload: bytes) -> tuple:
    """``body, message_id, correlation_id, subject, content_type, creation_time (us), application_properties,
    durable, priority, delivery_count`` of one logged message; never raises (see the module docstring)."""
    m = Message()
    body: Any = _UNREAD
    try:
        m.decode(payload)
        # proton reads a body section cut short as no body at all: keep what came instead
        body = body_to_bytes(m.body) if m.body is not None else body_as_sent(payload)
        return _message_columns(m, body)
    except Exception:  # noqa: BLE001 - RecursionError, UnicodeDecodeError, proton's errors: the lenient path below
        pass
    # proton decodes the sections in C first; a failure after that leaves the fields it read usable.
    if body is _UNREAD:
        body = body_as_sent(payload)
    props = _guarded(lambda: [(str(k), value_to_text(v)) for k, v in (m.properties or {}).items()]) or []
    return (
        body,
        _guarded(lambda: id_to_text(m.id)),
        _guarded(lambda: id_to_text(m.correlation_id)),
        _guarded(lambda: m.subject),
        _guarded(lambda: content_type_of(m)),
        _guarded(lambda: _creation_us(m.creation_time)),
        props,
        bool(_guarded(lambda: m.durable)),
        _guarded(lambda: int(m.priority)),
        _guarded(lambda: int(m.delivery_count)),
    )


def _creation_us(seconds: float | None) -> int | None:
    seconds = creation_seconds(seconds)
    return None if seconds is None else int(seconds * 1_000_000)


def _message_columns(m: Message, body: bytes | None) -> tuple:
    props = m.properties or {}
    return (
        body,
        id_to_text(m.id),
        id_to_text(m.correlation_id),
        m.subject,
        content_type_of(m),
        _creation_us(m.creation_time),
        [(str(k), value_to_text(v)) for k, v in props.items()],
        bool(m.durable),
        int(m.priority),
        int(m.delivery_count),
    )


_PAYLOAD_COLUMNS = (
    "body", "message_id", "correlation_id", "subject", "content_type", "creation_time", "application_properties",
    "durable", "priority", "delivery_count",
)  # fmt: skip


def annotations_of(payload: bytes) -> list[tuple[str, str]] | None:
    """The message annotations of one logged message as ``(key, text)`` pairs; null if it has none
    or they cannot be read (never raises). Keys are symbols or ulongs on the wire; both become text."""
    m = Message()
    try:
        m.decode(payload)
        annotations = m.annotations
    except Exception:  # noqa: BLE001 - hostile input: annotations proton cannot read are null
        return _guarded(lambda: _annotation_pairs(m.annotations))
    return _annotation_pairs(annotations)


def _annotation_pairs(annotations: Mapping[Any, Any] | None) -> list[tuple[str, str]] | None:
    if not annotations:
        return None
    return [(str(k) if isinstance(k, str) else str(value_to_text(k)), value_to_text(v)) for k, v in annotations.items()]


def records_to_arrow(
    records: list[tuple[int, int, bytes]], address: str, partition: int, include_annotations: bool = False
):  # -> pyarrow.RecordBatch
    """Log records ``(offset, received_ms, encoded message)`` as one Arrow record batch.

    Same values as :func:`message_to_row`, built column-wise: about twice as fast into
    Spark as tuples for large batches. Never raises on a hostile message (module docstring).
    """
    import pyarrow as pa

    cols: dict[str, list] = {name: [] for name in SOURCE_COLUMNS}
    for offset, received_ms, payload in records:
        for name, value in zip(_PAYLOAD_COLUMNS, _payload_columns(payload), strict=True):
            cols[name].append(value)
        cols["offset"].append(offset)
        cols["received_time"].append(received_ms * 1000)
    if include_annotations:
        cols[ANNOTATIONS_COLUMN] = [annotations_of(payload) for _, _, payload in records]
    n = len(records)
    cols["address"] = [address] * n
    cols["partition"] = [partition] * n
    schema = arrow_schema(include_annotations)
    return pa.RecordBatch.from_arrays([pa.array(cols[f.name], type=f.type) for f in schema], schema=schema)


def row_to_message(row: Mapping[str, Any], default_address: str | None) -> Message:
    """A sink row (``body`` required; see :data:`SINK_COLUMNS`) as a proton message.

    Raises ``ValueError`` naming the problem for a body that is neither string nor binary.
    """
    body = row.get("body")
    if body is not None and not isinstance(body, (str, bytes, bytearray)):
        raise ValueError(f"the 'body' column must be string or binary, got {type(body).__name__}: cast it first")
    # inferred: a binary body goes as a data section, the form every broker maps to a bytes message
    message = Message(body=bytes(body) if isinstance(body, bytearray) else body, durable=True, inferred=True)
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
