"""AMQP message <-> Kafka record conversion: pure functions, one per direction.

Three body modes (``Converter``):

``raw``
    AMQP -> Kafka: a ``data`` section or binary ``amqp-value`` is the record value as is; a
    string is UTF-8; any other value (number, bool, list, map, ``amqp-sequence``) is written
    as JSON text, the only portable form. Kafka -> AMQP: the value in a ``data`` section.
``json``
    AMQP -> Kafka: the body as JSON text. ``data``/binary bodies must already be UTF-8 JSON
    (malformed input raises ``ConversionError``, so it is rejected, not forwarded); other
    values are serialised. Kafka -> AMQP: the decoded JSON value as an ``amqp-value`` (a map
    arrives as an AMQP map), so ``json`` round-trips typed values.
``amqp``
    AMQP -> Kafka: the whole encoded AMQP message (``Message.encode``), header to footer.
    Kafka -> AMQP: ``Message.decode`` of the value, so every section survives the trip.

Key and partition come from the ``x-opt-bridge.key``/``x-opt-bridge.partition`` message
annotations, else from a configured application property (so one device keeps to one
partition). Application properties become Kafka headers and back; ``subject``,
``message_id``, ``correlation_id`` and ``content_type`` travel as ``amqp.*`` headers in the
``raw`` and ``json`` modes. Records sent to AMQP carry ``x-opt-bridge.topic/partition/
offset/key`` annotations.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from proton import Message, symbol

Converter = Literal["raw", "json", "amqp"]
CONVERTERS: tuple[Converter, ...] = ("raw", "json", "amqp")

KEY_ANNOTATION = "x-opt-bridge.key"
PARTITION_ANNOTATION = "x-opt-bridge.partition"
TOPIC_ANNOTATION = "x-opt-bridge.topic"
OFFSET_ANNOTATION = "x-opt-bridge.offset"

# AMQP message fields carried as Kafka headers (raw/json modes) so that they survive.
_FIELD_HEADERS = {
    "subject": "amqp.subject",
    "id": "amqp.message-id",
    "correlation_id": "amqp.correlation-id",
    "content_type": "amqp.content-type",
}


class ConversionError(ValueError):
    """A message that cannot be converted. ``condition`` is the AMQP error condition to reject it with."""

    def __init__(self, condition: str, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description


@dataclass(frozen=True)
class KafkaRecord:
    """One Kafka record, independent of the client library. ``partition``/``offset`` are None before produce."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    partition: int | None = None
    offset: int | None = None
    headers: tuple[tuple[str, bytes], ...] = field(default_factory=tuple)
    timestamp_ms: int | None = None


def _to_json_value(value: Any) -> Any:
    """AMQP-typed value -> JSON-serialisable value (maps with non-string keys get str keys)."""
    if isinstance(value, Mapping):
        return {str(k): _to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json_value(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _body_json(body: Any) -> bytes:
    try:
        return json.dumps(_to_json_value(body), separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ConversionError("amqp:decode-error", f"body cannot be written as JSON: {exc}") from None


def body_to_value(message: Message, converter: Converter) -> bytes | None:
    """The Kafka record value for ``message`` under ``converter``. Raises ``ConversionError``."""
    if converter == "amqp":
        return bytes(message.encode())
    body = message.body
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray, memoryview)):
        raw = bytes(body)
        if converter == "json":
            try:
                json.loads(raw)
            except ValueError as exc:
                raise ConversionError("amqp:decode-error", f"body is not valid JSON: {exc}") from None
        return raw
    if converter == "raw" and isinstance(body, str):
        return body.encode()
    return _body_json(body)


def _key_of(message: Message, key_property: str | None) -> bytes | None:
    annotations = message.annotations or {}
    if KEY_ANNOTATION in annotations:
        key = annotations[KEY_ANNOTATION]
        if isinstance(key, str):
            return key.encode()
        if isinstance(key, (bytes, bytearray)):
            return bytes(key)
        raise ConversionError("amqp:invalid-field", f"{KEY_ANNOTATION} must be a string or binary, not {type(key).__name__}")
    if key_property and message.properties and key_property in message.properties:
        value = message.properties[key_property]
        if value is None:
            return None
        return bytes(value) if isinstance(value, (bytes, bytearray)) else str(value).encode()
    return None


def _partition_of(message: Message) -> int | None:
    annotations = message.annotations or {}
    if PARTITION_ANNOTATION not in annotations:
        return None
    partition = annotations[PARTITION_ANNOTATION]
    if isinstance(partition, bool) or not isinstance(partition, int) or partition < 0:
        raise ConversionError("amqp:invalid-field", f"{PARTITION_ANNOTATION} must be a non-negative integer, not {partition!r}")
    return int(partition)


def _header_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return json.dumps(_to_json_value(value)).encode()


KAFKA_MAX_AHEAD_MS = 3_600_000
"""Kafka (4.x default ``log.message.timestamp.after.max.ms``) refuses a record timestamp more than
an hour ahead of its clock, and with it every other record of the same produce batch."""


def _timestamp_of(message: Message, now_ms: int | None) -> int | None:
    """``creation_time`` as the record timestamp, unless Kafka would refuse it (then Kafka stamps the record)."""
    if not message.creation_time:
        return None
    timestamp = int(message.creation_time * 1000)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return timestamp if timestamp <= now_ms + KAFKA_MAX_AHEAD_MS else None


def to_record(
    message: Message, topic: str, converter: Converter = "raw", key_property: str | None = None, now_ms: int | None = None
) -> KafkaRecord:
    """AMQP message -> Kafka record for ``topic``.

    Raises ``ConversionError`` (condition ``amqp:invalid-field`` for a wrongly typed
    annotation, ``amqp:decode-error`` for a body the converter cannot take). ``creation_time``
    becomes the record timestamp unless it is more than an hour ahead of ``now_ms`` (default:
    the clock): Kafka would refuse that record and the records batched with it.
    """
    key = _key_of(message, key_property)
    partition = _partition_of(message)
    headers: list[tuple[str, bytes]] = []
    if converter != "amqp":
        for attr, name in _FIELD_HEADERS.items():
            value = getattr(message, attr)
            if value is not None and value != "":
                headers.append((name, _header_bytes(value)))
    for name, value in (message.properties or {}).items():
        headers.append((str(name), _header_bytes(value)))
    return KafkaRecord(topic, body_to_value(message, converter), key, partition, None, tuple(headers), _timestamp_of(message, now_ms))


def _header_value(raw: bytes | None) -> str | bytes | None:
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def to_message(record: KafkaRecord, converter: Converter = "raw") -> Message:
    """Kafka record -> AMQP message, with ``x-opt-bridge.*`` annotations.

    Raises ``ConversionError`` when a ``json`` value is not JSON or an ``amqp`` value is not
    an encoded AMQP message.
    """
    if converter == "amqp":
        value = record.value or b""
        # proton decodes garbage into an empty message without complaint, so check for a section first
        if not (len(value) >= 3 and value[0] == 0x00 and value[1] == 0x53 and 0x70 <= value[2] <= 0x78):
            raise ConversionError("amqp:decode-error", "record is not an encoded AMQP message")
        message = Message()
        try:
            message.decode(value)
        except Exception as exc:  # noqa: BLE001 - proton raises its own DataException/MessageException family
            raise ConversionError("amqp:decode-error", f"record is not an encoded AMQP message: {exc}") from None
    elif converter == "json":
        try:
            body = json.loads(record.value) if record.value is not None else None
        except ValueError as exc:
            raise ConversionError("amqp:decode-error", f"record value is not valid JSON: {exc}") from None
        message = Message(body=body, content_type="application/json")
    else:
        message = Message(body=record.value, inferred=True)
    properties = dict(message.properties or {})
    fields = {v: k for k, v in _FIELD_HEADERS.items()}
    for name, raw in record.headers:
        if name in fields and converter != "amqp":
            value = _header_value(raw)
            setattr(message, fields[name], value.decode(errors="replace") if isinstance(value, bytes) else value)
        else:
            properties[name] = _header_value(raw)
    message.properties = properties or None
    annotations = dict(message.annotations or {})
    annotations[symbol(TOPIC_ANNOTATION)] = record.topic
    if record.partition is not None:
        annotations[symbol(PARTITION_ANNOTATION)] = record.partition
    if record.offset is not None:
        annotations[symbol(OFFSET_ANNOTATION)] = record.offset
    if record.key is not None:
        key = _header_value(record.key)
        annotations[symbol(KEY_ANNOTATION)] = key
    message.annotations = annotations
    if record.timestamp_ms and not message.creation_time:
        message.creation_time = record.timestamp_ms / 1000.0
    return message


def headers_from_kafka(headers: Sequence[tuple[str, bytes | None]] | None) -> tuple[tuple[str, bytes], ...]:
    """confluent-kafka's header list -> the record's header tuple (None values become empty bytes)."""
    return tuple((name, value if value is not None else b"") for name, value in (headers or ()))
