"""Malformed and hostile AMQP messages, each with what every path is expected to do with it.

One :class:`Case` per input: the message (a proton ``Message``, or :class:`RawMessage` bytes
for what proton will not encode: invalid UTF-8 in an AMQP string, nesting deeper than
Python's recursion limit), and its treatment by

- the AMQP source connector (``source_body``, plus other row columns in ``source_columns``):
  every delivered message becomes exactly one row;
- the windowed-max job (``job``): ``"reading"`` (a valid reading, counted in its window:
  ``reading``), ``"malformed"`` (dropped and counted in the ``malformed`` observed metric)
  or ``"not-delivered"`` (Artemis never delivers it: ``broker`` is ``"refused"``, the
  sender's connection is closed, or ``"expired"``);
- the bridge in server mode with the ``json`` and the ``raw`` converter (``bridge_json``,
  ``bridge_raw``): ``"accepted"`` (the record value is :meth:`Case.kafka_value`, its timestamp
  ``kafka_timestamp_ms`` if given, else Kafka's) or ``"rejected <condition> <metric reason>"``.

:func:`build_corpus` gives every case a message id ``hostile-<name>`` and every valid
reading a distinct ``(device_id, ts)`` from ``start_ms`` on, ``step_ms`` apart, so that tests
can interleave the cases with good readings of their own and recompute the expected windows.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from proton import Delivery, Message, Sender, symbol

from simulators.messages import reading_to_message
from simulators.model import Reading

DEPTH = 10_000
HUGE_BYTES = 4 * 1024 * 1024
FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01, beyond any plausible device clock
BEFORE_2000_MS = 5_000  # a device clock that booted at the epoch
LONG_MAX = 2**63 - 1
UTC = dt.timezone.utc


class RawMessage:
    """An encoded AMQP message that a proton sender sends byte for byte (``sender.send(raw)``)."""

    def __init__(self, encoded: bytes) -> None:
        self.encoded = encoded

    def send(self, sender: Sender, tag: str | None = None) -> Delivery:
        dlv = sender.delivery(tag or sender.delivery_tag())
        sender.stream(self.encoded)
        sender.advance()
        return dlv

    def encode(self) -> bytes:
        return self.encoded


# --- AMQP 1.0 encoding by hand (section 1.6 of the spec), for what proton refuses to encode ---
def _section(code: int, value: bytes) -> bytes:
    return b"\x00\x53" + bytes([code]) + value


def _str32(raw: bytes) -> bytes:
    return b"\xb1" + struct.pack(">I", len(raw)) + raw


def _list32(items: list[bytes]) -> bytes:
    body = b"".join(items)
    return b"\xd0" + struct.pack(">II", len(body) + 4, len(items)) + body


def _map32(pairs: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(k + v for k, v in pairs)
    return b"\xd1" + struct.pack(">II", len(body) + 4, 2 * len(pairs)) + body


def deep_list(depth: int) -> bytes:
    """An AMQP list nested ``depth`` deep: ``[[[...[]...]]]``."""
    value = b"\x45"  # list0
    for _ in range(depth):
        value = _list32([value])
    return value


def deep_map(depth: int) -> bytes:
    """An AMQP map nested ``depth`` deep: ``{"k": {"k": ... null}}``."""
    value = b"\x40"  # null
    for _ in range(depth):
        value = _map32([(_str32(b"k"), value)])
    return value


def _properties(message_id: str, subject: bytes | None = None) -> bytes:
    """A properties section: message-id, user-id, to, subject (raw bytes, unchecked)."""
    fields = [_str32(message_id.encode()), b"\x40", b"\x40"]
    if subject is not None:
        fields.append(_str32(subject))
    return _section(0x73, _list32(fields))


def _raw(message_id: str, body_value: bytes, subject: bytes | None = None) -> RawMessage:
    return RawMessage(_properties(message_id, subject) + _section(0x77, body_value))


# --- the cases ------------------------------------------------------------------------------
ACCEPTED = "accepted"
DECODE_ERROR = "rejected amqp:decode-error decode-error"
INVALID_FIELD = "rejected amqp:invalid-field invalid-field"
SIZE = "rejected amqp:link:message-size-exceeded size"


@dataclass(frozen=True)
class Case:
    """One hostile input and its expected treatment on every path (see the module docstring)."""

    name: str
    message: Message | RawMessage
    source_body: bytes | None
    job: str
    bridge_json: str
    bridge_raw: str
    reading: Reading | None = None
    source_columns: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    broker: str = "accepted"
    kafka_timestamp_ms: int | None = None
    kafka_values: dict[str, bytes | None] = field(default_factory=dict)

    @property
    def message_id(self) -> str:
        return f"hostile-{self.name}"

    def kafka_value(self, converter: str) -> bytes | None:
        """The Kafka record value the bridge writes with ``converter`` (where it accepts the message)."""
        return self.kafka_values.get(converter, self.source_body)


def _data(body: bytes, content_type: str | None = "application/json", **fields: Any) -> Message:
    return Message(body=body, inferred=True, content_type=content_type, durable=True, **fields)


def build_corpus(start_ms: int, step_ms: int = 1, device: str = "device-h") -> list[Case]:
    """Every hostile case; valid readings among them get ``device`` and ``ts`` from ``start_ms`` on, ``step_ms`` apart."""
    ts = iter(range(start_ms, start_ms + 1000 * step_ms, step_ms))

    def reading(temperature: float) -> Reading:
        return Reading(device, temperature, next(ts))

    def good_json(r: Reading, **extra: Any) -> bytes:
        return json.dumps({**r.to_dict(), **extra}, separators=(",", ":")).encode()

    def contract(r: Reading, **fields: Any) -> Message:
        m = reading_to_message(r)
        for k, v in fields.items():
            setattr(m, k, v)
        return m

    cases: list[Case] = []

    def add(name: str, message: Message | RawMessage, source_body: bytes | None, job: str, bridge_json: str,
            bridge_raw: str = ACCEPTED, reading: Reading | None = None, note: str = "", broker: str = "accepted",
            kafka_timestamp_ms: int | None = None, kafka_values: dict[str, bytes | None] | None = None,
            **columns: Any) -> None:  # fmt: skip
        if isinstance(message, Message):
            message.id = f"hostile-{name}"
        cases.append(Case(name, message, source_body, job, bridge_json, bridge_raw, reading, columns, note, broker,
                          kafka_timestamp_ms, kafka_values or {}))  # fmt: skip

    # --- broken JSON, wrong types, missing fields ---
    body = b'{"device_id": "device-1", "temperature": 2'
    add("broken-json", _data(body), body, "malformed", DECODE_ERROR)
    body = b'{"device_id": "device-1", "temperature": "hot", "ts": 1764370000000}'
    add("temperature-string", _data(body), body, "malformed", ACCEPTED)
    body = b'{"device_id": "device-1", "temperature": 20.5, "ts": "soon"}'
    add("ts-string", _data(body), body, "malformed", ACCEPTED)
    body = b'{"device_id": "device-1", "temperature": 20.5, "ts": 1764370000000.5}'
    add("ts-fraction", _data(body), body, "malformed", ACCEPTED)
    body = b'{"device_id": "device-1", "temperature": 20.5}'
    add("missing-ts", _data(body), body, "malformed", ACCEPTED)
    add("empty-object", _data(b"{}"), b"{}", "malformed", ACCEPTED)
    add("json-array", _data(b"[1,2]"), b"[1,2]", "malformed", ACCEPTED)
    add("empty-data", _data(b""), b"", "malformed", DECODE_ERROR)
    add("no-body", Message(durable=True), None, "malformed", ACCEPTED, note="Kafka gets a null value")
    r = reading(21.0)
    add("device-id-number", _data(good_json(r, device_id=17)), good_json(r, device_id=17), "reading", ACCEPTED,
        reading=Reading("17", r.temperature, r.ts), note="Spark's from_json takes the number 17 as the string \"17\"")  # fmt: skip
    body = b'{"device_id": "device-1", "temperature": 1e999, "ts": 1764370000000}'
    add("temperature-overflow", _data(body), body, "malformed", ACCEPTED, note="1e999 parses as infinity")
    body = b'{"device_id": "device-1", "temperature": NaN, "ts": 1764370000000}'
    add("temperature-nan", _data(body), body, "malformed", ACCEPTED, note="not JSON, but Python's json module takes NaN")
    r = reading(21.5)
    body = good_json(r) + b" trailing garbage"
    add("trailing-garbage", _data(body), body, "reading", DECODE_ERROR, reading=r,
        note="Spark's from_json reads the first JSON value and ignores the rest")  # fmt: skip
    body = b"[" * DEPTH + b"]" * DEPTH
    add("json-nested-10k", _data(body), body, "malformed", DECODE_ERROR)
    # --- huge ---
    r = reading(22.0)
    body = good_json(r, pad="x" * HUGE_BYTES)
    add("huge-4mib", _data(body), body, "reading", SIZE, SIZE, reading=r)
    # --- invalid UTF-8 ---
    body = b'{"device_id": "device-\xff\xfe", "temperature": 20.5, "ts": 1764370000000}'
    add("utf8-invalid-data", _data(body), body, "malformed", DECODE_ERROR)
    add("utf8-invalid-amqp-string", _raw("hostile-utf8-invalid-amqp-string", _str32(b"bad \xff\xfe text")), b"bad \xff\xfe text",
        "malformed", DECODE_ERROR, DECODE_ERROR, note="the source passes the string's bytes as sent")  # fmt: skip
    r = reading(22.5)
    add("utf8-invalid-subject", RawMessage(_properties("hostile-utf8-invalid-subject", b"dev\xff") + _section(0x75, b"\xb0" + struct.pack(">I", len(good_json(r))) + good_json(r))),
        good_json(r), "not-delivered", DECODE_ERROR, DECODE_ERROR, broker="refused", subject=None,
        note="Artemis closes the sender's connection (amqp:internal-error); the source would leave the subject null")  # fmt: skip
    cut = _properties("hostile-data-section-cut-short") + b"\x00\x53\x75\xb0\x00\x00\x00\x10abc"
    add("data-section-cut-short", RawMessage(cut), cut, "malformed", ACCEPTED, kafka_values={"json": None, "raw": None},
        note="a data section of 16 bytes holding 3: the source passes the message bytes as they came; "
        "proton reads it as no body, so the bridge writes a null value")  # fmt: skip
    # --- deep AMQP values ---
    add("amqp-list-nested-10k", _raw("hostile-amqp-list-nested-10k", deep_list(DEPTH)), deep_list(DEPTH), "malformed",
        DECODE_ERROR, DECODE_ERROR, note="the source passes the AMQP encoding of a value nested too deep for JSON")  # fmt: skip
    add("amqp-map-nested-10k", _raw("hostile-amqp-map-nested-10k", deep_map(DEPTH)), deep_map(DEPTH), "malformed",
        DECODE_ERROR, DECODE_ERROR)  # fmt: skip
    # --- wrong body types and content types ---
    r = reading(23.0)
    add("reading-as-amqp-map", Message(body=r.to_dict(), durable=True), r.to_json().encode(), "reading", ACCEPTED, reading=r,
        note="an amqp-value map converts to JSON")  # fmt: skip
    add("amqp-value-string", Message(body="hello", durable=True), b"hello", "malformed", ACCEPTED,
        kafka_values={"json": b'"hello"'}, note="the json converter writes the JSON string \"hello\"")  # fmt: skip
    add("amqp-value-binary", Message(body=b"\x00\x01\x02", durable=True), b"\x00\x01\x02", "malformed", DECODE_ERROR)
    r = reading(23.5)
    add("content-type-text-plain", contract(r, content_type="text/plain"), r.to_json().encode(), "reading", ACCEPTED,
        reading=r, content_type="text/plain", note="no path checks the content type")  # fmt: skip
    body = b"\x89PNG\r\n\x1a\n\x00\x00"
    add("content-type-octet-stream", _data(body, "application/octet-stream"), body, "malformed", DECODE_ERROR)
    # --- addresses and annotations ---
    r = reading(24.0)
    add("to-unknown-address", contract(r, address="no-such-address"), r.to_json().encode(), "reading", ACCEPTED, reading=r,
        note="the link's address counts, not the message's to field")  # fmt: skip
    for name, annotation, value, treatment in (
        ("annotation-partition-string", "x-opt-bridge.partition", "zero", INVALID_FIELD),
        ("annotation-partition-negative", "x-opt-bridge.partition", -1, INVALID_FIELD),
        ("annotation-partition-absent", "x-opt-bridge.partition", 7, INVALID_FIELD),
        ("annotation-key-float", "x-opt-bridge.key", 3.5, INVALID_FIELD),
        ("annotation-key-list", "x-opt-bridge.key", ["a"], INVALID_FIELD),
    ):
        r = reading(24.5)
        add(name, contract(r, annotations={symbol(annotation): value}), r.to_json().encode(), "reading", treatment, treatment,
            reading=r)  # fmt: skip
    # --- implausible times ---
    for name, bad_ts in (
        ("ts-negative", -1000),
        ("ts-1970", BEFORE_2000_MS),
        ("ts-2100", FAR_FUTURE_MS),
        ("ts-long-max", LONG_MAX),
    ):
        body = json.dumps({"device_id": "device-1", "temperature": 20.5, "ts": bad_ts}).encode()
        add(name, _data(body), body, "malformed", ACCEPTED)
    r = reading(25.0)
    add("creation-time-1969", contract(r, creation_time=-1.0), r.to_json().encode(), "reading", ACCEPTED, reading=r,
        kafka_timestamp_ms=-1000, creation_time=dt.datetime(1969, 12, 31, 23, 59, 59))  # fmt: skip
    r = reading(25.5)
    add("creation-time-2100", contract(r, creation_time=FAR_FUTURE_MS / 1000), r.to_json().encode(), "reading", ACCEPTED,
        reading=r, creation_time=dt.datetime(2100, 1, 1), note="the bridge lets Kafka stamp the record")  # fmt: skip
    r = reading(26.0)
    add("creation-time-year-285m", contract(r, creation_time=9e15), r.to_json().encode(), "reading", ACCEPTED, reading=r,
        creation_time=None, note="the source leaves a creation time beyond year 9999 null; the bridge lets Kafka stamp the record")  # fmt: skip
    r = reading(26.5)
    add("expiry-1969", contract(r, expiry_time=-1.0), r.to_json().encode(), "reading", ACCEPTED, reading=r,
        note="Artemis takes a negative expiry for none")  # fmt: skip
    r = reading(27.0)
    add("expiry-2001", contract(r, expiry_time=978_307_200.0), None, "not-delivered", ACCEPTED, broker="expired",
        kafka_values={"json": r.to_json().encode(), "raw": r.to_json().encode()},
        note="Artemis expires it; the bridge does not look at expiry times")  # fmt: skip
    r = reading(27.5)
    add("expiry-2100", contract(r, expiry_time=FAR_FUTURE_MS / 1000), r.to_json().encode(), "reading", ACCEPTED, reading=r)
    return cases
