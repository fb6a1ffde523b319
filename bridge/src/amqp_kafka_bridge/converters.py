"""AMQP message <-> Kafka record conversion: one :class:`MessageConverter` per body format.

Three formats (``Converter``), chosen by name with :func:`converter_for`:

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
partition). Application properties become Kafka headers and back (a binary value as its
bytes, any other as UTF-8 text by the rules of :mod:`amqp_message_model.values`, the same
rules the Spark connector uses for its columns); ``subject``,
``message_id``, ``correlation_id`` and ``content_type`` travel as ``amqp.*`` headers in the
``raw`` and ``json`` modes. Records sent to AMQP carry ``x-opt-bridge.topic/partition/
offset/key`` annotations.
"""

from __future__ import annotations

import functools
import json
import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, NamedTuple

from amqp_message_model import encoding
from amqp_message_model.decoding import PlainMessage
from amqp_message_model.sections import is_encoded_message
from amqp_message_model.values import MESSAGE_FIELDS, body_to_bytes, content_type_of, id_to_text, to_json_value, value_to_bytes
from proton import Message, symbol

from amqp_kafka_bridge.errors import AmqpConditionError

Converter = Literal["raw", "json", "amqp"]
CONVERTERS: tuple[Converter, ...] = ("raw", "json", "amqp")

KEY_ANNOTATION = "x-opt-bridge.key"
PARTITION_ANNOTATION = "x-opt-bridge.partition"
TOPIC_ANNOTATION = "x-opt-bridge.topic"
OFFSET_ANNOTATION = "x-opt-bridge.offset"
# The annotation keys, encoded once (encode_message writes the annotations map directly).
_TOPIC_KEY, _PARTITION_KEY, _OFFSET_KEY, _KEY_KEY = (
    encoding.encode_symbol(a) for a in (TOPIC_ANNOTATION, PARTITION_ANNOTATION, OFFSET_ANNOTATION, KEY_ANNOTATION)
)


@functools.lru_cache(maxsize=1024)
def _topic_entry(topic: str) -> bytes:
    """The ``x-opt-bridge.topic`` annotation entry for ``topic`` (a link reads one topic: encoded once)."""
    return _TOPIC_KEY + encoding.encode_string(topic)


# AMQP message fields carried as Kafka headers (raw/json modes) so that they survive.
_FIELD_HEADERS = dict(
    zip(MESSAGE_FIELDS, ("amqp.subject", "amqp.message-id", "amqp.correlation-id", "amqp.content-type"), strict=True)
)
_HEADER_FIELDS = {header: attr for attr, header in _FIELD_HEADERS.items()}


class ConversionError(AmqpConditionError, ValueError):
    """A message or record that cannot be converted (the bridge's :class:`AmqpConditionError`, raised by converters)."""


class KafkaRecord(NamedTuple):
    """One Kafka record, independent of the client library. ``partition``/``offset`` are None before produce.

    A named tuple (immutable, and built several times cheaper than a frozen dataclass: one is
    made per message in both directions).
    """

    topic: str
    value: bytes | None
    key: bytes | None = None
    partition: int | None = None
    offset: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None


def _body_json(body: Any) -> bytes:
    try:
        return json.dumps(to_json_value(body), separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        raise ConversionError("amqp:decode-error", f"body cannot be written as JSON: {exc}") from None


def _key_of(message: Message | PlainMessage, key_property: str | None) -> bytes | None:
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


def _partition_of(message: Message | PlainMessage) -> int | None:
    annotations = message.annotations or {}
    if PARTITION_ANNOTATION not in annotations:
        return None
    partition = annotations[PARTITION_ANNOTATION]
    if isinstance(partition, bool) or not isinstance(partition, int) or partition < 0:
        raise ConversionError("amqp:invalid-field", f"{PARTITION_ANNOTATION} must be a non-negative integer, not {partition!r}")
    return int(partition)


def _field_headers(message: Message | PlainMessage) -> list[tuple[str, bytes]]:
    """The travelling message fields as headers, in ``MESSAGE_FIELDS`` order (ids and content type by the shared model's rules)."""
    headers = []
    subject = message.subject
    if subject is not None and subject != "":
        headers.append(("amqp.subject", str(subject).encode()))
    for name, value in (("amqp.message-id", message.id), ("amqp.correlation-id", message.correlation_id)):
        if value is not None:
            text = id_to_text(value)
            if text:
                headers.append((name, text.encode()))
    content_type = content_type_of(message)  # type: ignore[arg-type] - reads .content_type only
    if content_type:
        headers.append(("amqp.content-type", content_type.encode()))
    return headers


KAFKA_MAX_AHEAD_MS = 3_600_000
"""Kafka (4.x default ``log.message.timestamp.after.max.ms``) refuses a record timestamp more than
an hour ahead of its clock, and with it every other record of the same produce batch."""


def _timestamp_of(message: Message | PlainMessage, now_ms: int | None) -> int | None:
    """``creation_time`` as the record timestamp, unless Kafka would refuse it (then Kafka stamps the record)."""
    if not message.creation_time:
        return None
    timestamp = int(message.creation_time * 1000)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return timestamp if timestamp <= now_ms + KAFKA_MAX_AHEAD_MS else None


def _record_headers(message: Message | PlainMessage, fields: bool) -> tuple[tuple[str, bytes], ...]:
    headers = _field_headers(message) if fields else []
    properties = message.properties
    if properties:
        headers.extend([(str(name), value_to_bytes(value)) for name, value in properties.items()])
    return tuple(headers)


def _header_value(raw: bytes | None) -> str | bytes | None:
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


class MessageConverter(ABC):
    """One body format between AMQP and Kafka (the shape of Strimzi's ``MessageConverter``).

    Key, partition, timestamp, headers and the ``x-opt-bridge.*`` annotations are the same for
    every format; a subclass says only how the body becomes the record value and back, and
    whether the AMQP fields travel as ``amqp.*`` headers.
    """

    name: ClassVar[Converter]
    fields_as_headers: ClassVar[bool] = True
    reads_plain: ClassVar[bool] = True
    """``to_record`` reads only what a :class:`~amqp_message_model.decoding.PlainMessage` has (not the whole message)."""
    converts_in_c: ClassVar[bool] = False
    """The native lane converts plain messages itself, by this converter's rules (``_plain_record.c``)."""

    @abstractmethod
    def record_value(self, message: Message | PlainMessage) -> bytes | None:
        """The Kafka record value for ``message``. Raises ``ConversionError``."""

    @abstractmethod
    def message_of(self, value: bytes | None) -> Message:
        """The AMQP message (before headers and annotations) for a record value. Raises ``ConversionError``."""

    def to_record(
        self, message: Message | PlainMessage, topic: str, key_property: str | None = None, now_ms: int | None = None
    ) -> KafkaRecord:
        """AMQP message -> Kafka record for ``topic``.

        Raises ``ConversionError`` (condition ``amqp:invalid-field`` for a wrongly typed
        annotation, ``amqp:decode-error`` for a body the converter cannot take). ``creation_time``
        becomes the record timestamp unless it is more than an hour ahead of ``now_ms`` (default:
        the clock): Kafka would refuse that record and the records batched with it.
        """
        key = _key_of(message, key_property)
        partition = _partition_of(message)
        headers = _record_headers(message, self.fields_as_headers)
        return KafkaRecord(topic, self.record_value(message), key, partition, None, headers, _timestamp_of(message, now_ms))

    def to_message(self, record: KafkaRecord) -> Message:
        """Kafka record -> AMQP message, with ``x-opt-bridge.*`` annotations. Raises ``ConversionError``."""
        message = self.message_of(record.value)
        properties = dict(message.properties or {})
        fields = {v: k for k, v in _FIELD_HEADERS.items()} if self.fields_as_headers else {}
        for name, raw in record.headers:
            if name in fields:
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
            annotations[symbol(KEY_ANNOTATION)] = _header_value(record.key)
        message.annotations = annotations
        if record.timestamp_ms and not message.creation_time:
            message.creation_time = record.timestamp_ms / 1000.0
        return message

    def body_section(self, value: bytes | None) -> bytes | None:
        """The encoded body section :meth:`message_of` gives ``value`` (None: no body), for :meth:`encode_message`.

        Raises ``ConversionError``, or ``NotImplementedError`` when only a proton ``Message`` can say.
        """
        raise NotImplementedError

    default_content_type: ClassVar[str | None] = None
    """The content type :meth:`message_of` sets (a header may override it)."""

    def encode_message(self, record: KafkaRecord) -> bytes:
        """Kafka record -> the AMQP encoding of :meth:`to_message`'s message, ready to send. Raises ``ConversionError``.

        Written directly by ``amqp_message_model.encoding`` (the same bytes proton would give,
        in a few microseconds instead of tens) for the formats whose body alone comes from
        the value; through a proton ``Message`` for the others.
        """
        try:
            body = self.body_section(record.value)
        except NotImplementedError:
            return bytes(self.to_message(record).encode())
        except ConversionError:
            raise
        except (ValueError, OverflowError, struct.error) as exc:  # a JSON number no AMQP type holds
            raise ConversionError("amqp:decode-error", f"record cannot be written as an AMQP message: {exc}") from None
        properties: dict[str, Any] = {}
        fields: dict[str, Any] | None = None
        if record.headers:
            by_header = _HEADER_FIELDS if self.fields_as_headers else {}
            for name, raw in record.headers:
                value = _header_value(raw)
                attr = by_header.get(name)
                if attr is None:
                    properties[name] = value
                else:
                    fields = fields or {}
                    fields[attr] = value.decode(errors="replace") if isinstance(value, bytes) else value
        try:
            annotations = [_topic_entry(record.topic)]
            if record.partition is not None:
                annotations.append(_PARTITION_KEY + encoding.encode_long(record.partition))
            if record.offset is not None:
                annotations.append(_OFFSET_KEY + encoding.encode_long(record.offset))
            if record.key is not None:
                annotations.append(_KEY_KEY + encoding.encode_value(_header_value(record.key)))
            if fields is None and not record.timestamp_ms and self.default_content_type is None:
                header = encoding.EMPTY_PROPERTIES
            else:
                fields = fields or {}
                header = encoding.encode_properties(
                    fields.get("id"),
                    fields.get("subject"),
                    fields.get("correlation_id"),
                    fields.get("content_type", self.default_content_type),
                    record.timestamp_ms,
                )
            return encoding.encode_message(body, encoding.encoded_map(annotations), header, properties)
        except (ValueError, OverflowError, struct.error) as exc:
            raise ConversionError("amqp:decode-error", f"record cannot be written as an AMQP message: {exc}") from None


class RawConverter(MessageConverter):
    """The body as bytes (the shared model's rules); back as one ``data`` section."""

    name = "raw"
    converts_in_c = True

    def record_value(self, message: Message | PlainMessage) -> bytes | None:
        return body_to_bytes(message.body)

    def message_of(self, value: bytes | None) -> Message:
        return Message(body=value, inferred=True)

    def body_section(self, value: bytes | None) -> bytes | None:
        return None if value is None else encoding.data_body(value)


class JsonConverter(MessageConverter):
    """The body as JSON text (a binary body must already be UTF-8 JSON); back as a typed ``amqp-value``."""

    name = "json"
    default_content_type = "application/json"

    def record_value(self, message: Message | PlainMessage) -> bytes | None:
        body = message.body
        if body is None:
            return None
        if isinstance(body, (bytes, bytearray, memoryview)):
            raw = bytes(body)
            try:
                json.loads(raw)
            except ValueError as exc:
                raise ConversionError("amqp:decode-error", f"body is not valid JSON: {exc}") from None
            return raw
        return _body_json(body)

    def message_of(self, value: bytes | None) -> Message:
        try:
            body = json.loads(value) if value is not None else None
        except ValueError as exc:
            raise ConversionError("amqp:decode-error", f"record value is not valid JSON: {exc}") from None
        return Message(body=body, content_type=self.default_content_type)

    def body_section(self, value: bytes | None) -> bytes | None:
        try:
            body = json.loads(value) if value is not None else None
        except ValueError as exc:
            raise ConversionError("amqp:decode-error", f"record value is not valid JSON: {exc}") from None
        return None if body is None else encoding.value_body(body)


class AmqpConverter(MessageConverter):
    """The whole encoded AMQP message, header to footer, so every section survives the trip."""

    name = "amqp"
    fields_as_headers = False
    reads_plain = False  # the record value is the whole message, re-encoded by proton

    def record_value(self, message: Message | PlainMessage) -> bytes | None:
        return bytes(message.encode())

    def message_of(self, value: bytes | None) -> Message:
        if not is_encoded_message(value):
            raise ConversionError("amqp:decode-error", "record is not an encoded AMQP message")
        message = Message()
        try:
            message.decode(value)
        except Exception as exc:  # noqa: BLE001 - proton raises its own DataException/MessageException family
            raise ConversionError("amqp:decode-error", f"record is not an encoded AMQP message: {exc}") from None
        return message


_CONVERTERS: dict[str, MessageConverter] = {c.name: c for c in (RawConverter(), JsonConverter(), AmqpConverter())}


def converter_for(name: Converter) -> MessageConverter:
    """The converter called ``name`` (one of :data:`CONVERTERS`)."""
    return _CONVERTERS[name]


def to_record(
    message: Message, topic: str, converter: Converter = "raw", key_property: str | None = None, now_ms: int | None = None
) -> KafkaRecord:
    """AMQP message -> Kafka record with the converter called ``converter`` (see :meth:`MessageConverter.to_record`)."""
    return converter_for(converter).to_record(message, topic, key_property, now_ms)


def to_message(record: KafkaRecord, converter: Converter = "raw") -> Message:
    """Kafka record -> AMQP message with the converter called ``converter`` (see :meth:`MessageConverter.to_message`)."""
    return converter_for(converter).to_message(record)


def headers_from_kafka(headers: Sequence[tuple[str, bytes | None]] | None) -> tuple[tuple[str, bytes], ...]:
    """confluent-kafka's header list -> the record's header tuple (None values become empty bytes)."""
    return tuple((name, value if value is not None else b"") for name, value in (headers or ()))
