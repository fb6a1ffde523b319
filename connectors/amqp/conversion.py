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


# creation_time outside these (years 1..9999, in seconds) is out of reach of Python's datetime and Spark's collect
_MIN_TIME_S = (dt.datetime(1, 1, 2, tzinfo=UTC) - dt.datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()
_MAX_TIME_S = (dt.datetime(9999, 12, 31, tzinfo=UTC) - dt.datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()


def _creation_seconds(seconds: float | None) -> float | None:
    # proton gives creation_time as float seconds since the epoch; 0 means "not set".
    if not seconds or not _MIN_TIME_S <= seconds <= _MAX_TIME_S:
        return None
    return seconds


def _epoch_ms_to_datetime(seconds: float | None) -> dt.datetime | None:
    seconds = _creation_seconds(seconds)
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, tz=UTC)


def _content_type(message: Message) -> str | None:
    # proton 0.40 reports an absent content type as symbol('None').
    value = message.content_type
    return None if value is None or value == "None" or value == "" else str(value)


def bare_message_digest(encoded: bytes) -> bytes:
    """A digest of what the sender sent, ignoring what a broker changes on redelivery.

    The header (delivery count, first-acquirer, ...) and the delivery and message
    annotations are left out, so a redelivered message has the digest of its first delivery.
    Never raises: a message proton cannot decode is digested from its bytes, with the same
    sections left out.
    """
    import hashlib

    try:
        amqp_sections(encoded)  # proton takes some malformed input for an empty message
        message = decode_message(encoded)
        message.delivery_count = 0
        message.first_acquirer = False
        message.durable = False
        message.priority = 4
        message.ttl = 0
        message.instructions = None
        message.annotations = None
        bare = bytes(message.encode())
    except Exception:  # noqa: BLE001 - RecursionError, UnicodeDecodeError, proton's own errors: see the module docstring
        try:
            bare = b"".join(encoded[start:end] for code, start, end in amqp_sections(encoded) if code not in _BROKER_SECTIONS)
        except ValueError:
            bare = encoded
        bare = b"raw:" + bare
    return hashlib.blake2b(bare, digest_size=16).digest()


# Section codes (AMQP 1.0 part 3.2): what a broker may change on redelivery, and the body.
_BROKER_SECTIONS = frozenset({0x70, 0x71, 0x72})  # header, delivery-annotations, message-annotations
_DATA, _SEQUENCE, _VALUE = 0x75, 0x76, 0x77
_FIXED_WIDTH = {0x4: 0, 0x5: 1, 0x6: 2, 0x7: 4, 0x8: 8, 0x9: 16}  # by the constructor's high nibble (part 1.6)


def _value_end(buf: bytes, pos: int, depth: int = 0) -> int:
    """Where the AMQP-encoded value starting at ``pos`` ends, from its constructor alone (no decoding)."""
    code = buf[pos]
    if code == 0x00:  # described: a descriptor, then the value
        if depth >= 4:
            raise ValueError("descriptors nested too deep")
        return _value_end(buf, _value_end(buf, pos + 1, depth + 1), depth + 1)
    nibble = code >> 4
    if nibble in _FIXED_WIDTH:
        end = pos + 1 + _FIXED_WIDTH[nibble]
    elif nibble in (0xA, 0xC, 0xE):
        end = pos + 2 + buf[pos + 1]
    elif nibble in (0xB, 0xD, 0xF):
        end = pos + 5 + int.from_bytes(buf[pos + 1 : pos + 5], "big")
    else:
        raise ValueError(f"no AMQP type has constructor 0x{code:02x}")
    if end > len(buf):
        raise ValueError("value cut short")
    return end


def amqp_sections(encoded: bytes) -> list[tuple[int, int, int]]:
    """An encoded message's sections as ``(section code, value start, value end)``, found without decoding them.

    Raises ``ValueError`` if ``encoded`` is not a sequence of described sections.
    """
    sections = []
    pos = 0
    try:
        while pos < len(encoded):
            if encoded[pos] != 0x00:
                raise ValueError(f"no section at byte {pos}")
            start = _value_end(encoded, pos + 1)
            descriptor = encoded[pos + 1 : start]
            if descriptor[0] == 0x53:
                code = descriptor[1]
            elif descriptor[0] == 0x80:
                code = int.from_bytes(descriptor[1:9], "big")
            else:
                code = -1  # a symbolic descriptor
            end = _value_end(encoded, start)
            sections.append((code, start, end))
            pos = end
    except IndexError:
        raise ValueError("message cut short") from None
    return sections


def _body_as_sent(encoded: bytes) -> bytes | None:
    """The ``body`` column without converting the body: data sections' bytes, an amqp-value
    string's bytes (unchecked), else the AMQP encoding of the body section values; the whole
    input if it is not an AMQP message."""
    try:
        body = [(code, start, end) for code, start, end in amqp_sections(encoded) if code in (_DATA, _SEQUENCE, _VALUE)]
    except ValueError:
        return encoded
    if not body or (len(body) == 1 and body[0][0] == _VALUE and encoded[body[0][1]] == 0x40):
        return None  # no body, or an amqp-value null

    def content(start: int, end: int) -> bytes:  # of a binary or string value
        return encoded[start + (2 if encoded[start] >> 4 == 0xA else 5) : end]

    if all(code == _DATA and encoded[start] in (0xA0, 0xB0) for code, start, _ in body):
        return b"".join(content(start, end) for _, start, end in body)
    if len(body) == 1 and body[0][0] == _VALUE and encoded[body[0][1]] in (0xA1, 0xB1):
        return content(body[0][1], body[0][2])
    return b"".join(encoded[start:end] for _, start, end in body)


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
        body = body_to_bytes(m.body) if m.body is not None else _body_as_sent(payload)
        return _message_columns(m, body)
    except Exception:  # noqa: BLE001 - RecursionError, UnicodeDecodeError, proton's errors: the lenient path below
        pass
    # proton decodes the sections in C first; a failure after that leaves the fields it read usable.
    if body is _UNREAD:
        body = _body_as_sent(payload)
    props = _guarded(lambda: [(str(k), value_to_str(v)) for k, v in (m.properties or {}).items()]) or []
    return (
        body,
        _guarded(lambda: _id_to_str(m.id)),
        _guarded(lambda: _id_to_str(m.correlation_id)),
        _guarded(lambda: m.subject),
        _guarded(lambda: _content_type(m)),
        _guarded(lambda: _creation_us(m.creation_time)),
        props,
        bool(_guarded(lambda: m.durable)),
        _guarded(lambda: int(m.priority)),
        _guarded(lambda: int(m.delivery_count)),
    )


def _creation_us(seconds: float | None) -> int | None:
    seconds = _creation_seconds(seconds)
    return None if seconds is None else int(seconds * 1_000_000)


def _message_columns(m: Message, body: bytes | None) -> tuple:
    props = m.properties or {}
    return (
        body,
        _id_to_str(m.id),
        _id_to_str(m.correlation_id),
        m.subject,
        _content_type(m),
        _creation_us(m.creation_time),
        [(str(k), value_to_str(v)) for k, v in props.items()],
        bool(m.durable),
        int(m.priority),
        int(m.delivery_count),
    )


_PAYLOAD_COLUMNS = (
    "body", "message_id", "correlation_id", "subject", "content_type", "creation_time", "application_properties",
    "durable", "priority", "delivery_count",
)  # fmt: skip


def records_to_arrow(records: list[tuple[int, int, bytes]], address: str, partition: int):  # -> pyarrow.RecordBatch
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
