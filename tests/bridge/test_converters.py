"""Converters are pure: every AMQP body type, both directions, every mode."""

from __future__ import annotations

import json
import uuid

import pytest
from amqp_kafka_bridge.converters import ConversionError, KafkaRecord, to_message, to_record
from hypothesis import given
from hypothesis import strategies as st
from proton import Message, symbol

pytestmark = pytest.mark.unit

BODIES = {
    "data": (Message(body=b"\x00\xffbin", inferred=True), b"\x00\xffbin"),
    "value-str": (Message(body="héllo"), "héllo".encode()),
    "value-bytes": (Message(body=b"raw"), b"raw"),
    "value-int": (Message(body=-7), b"-7"),
    "value-float": (Message(body=1.5), b"1.5"),
    "value-bool": (Message(body=False), b"false"),
    "value-list": (Message(body=[1, "x", None]), b'[1,"x",null]'),
    "value-map": (Message(body={"a": {"b": [1]}}), b'{"a":{"b":[1]}}'),
    "sequence": (Message(body=[1, 2], inferred=True), b"[1,2]"),
    "none": (Message(), None),
}


def roundtrip(message: Message) -> Message:
    """What a peer receives: encode and decode, as on the wire."""
    out = Message()
    out.decode(message.encode())
    return out


@pytest.mark.parametrize("name", list(BODIES))
def test_raw_amqp_to_kafka_every_body_type(name):
    message, expected = BODIES[name]
    assert to_record(roundtrip(message), "t", "raw").value == expected


@pytest.mark.parametrize("name", [n for n in BODIES if n not in ("data", "value-bytes", "none")])
def test_json_amqp_to_kafka_every_value_type(name):
    message, _ = BODIES[name]
    value = to_record(roundtrip(message), "t", "json").value
    body = message.body
    assert json.loads(value) == (list(body) if isinstance(body, tuple) else body)


def test_json_takes_data_only_when_it_is_json():
    assert to_record(Message(body=b'{"x":1}', inferred=True), "t", "json").value == b'{"x":1}'
    with pytest.raises(ConversionError) as err:
        to_record(Message(body=b"{nope", inferred=True), "t", "json")
    assert err.value.condition == "amqp:decode-error"


@pytest.mark.parametrize("name", list(BODIES))
def test_amqp_mode_round_trips_every_body_type(name):
    message, _ = BODIES[name]
    message = roundtrip(message)
    record = to_record(message, "t", "amqp")
    back = to_message(KafkaRecord("t", record.value, None, 0, 5), "amqp")
    assert back.body == message.body and back.inferred == message.inferred
    assert back.annotations["x-opt-bridge.offset"] == 5


def test_key_partition_headers_and_fields():
    message = Message(
        body=b"x", inferred=True, subject="s", id=uuid.UUID(int=1), correlation_id="c", content_type="application/json",
        properties={"device_id": "d-1", "n": 3, "b": b"\x01"}, annotations={symbol("x-opt-bridge.partition"): 2},
        creation_time=1764370000.123,
    )  # fmt: skip
    record = to_record(message, "topic", "raw", key_property="device_id")
    assert (record.key, record.partition, record.timestamp_ms) == (b"d-1", 2, 1764370000123)
    headers = dict(record.headers)
    assert headers["amqp.subject"] == b"s" and headers["amqp.correlation-id"] == b"c"
    assert headers["amqp.message-id"] == b"00000000-0000-0000-0000-000000000001"  # bare, as in the connector's column
    assert headers["amqp.content-type"] == b"application/json"
    assert (headers["device_id"], headers["n"], headers["b"]) == (b"d-1", b"3", b"\x01")


def test_key_annotation_wins_over_property():
    message = Message(body="x", properties={"device_id": "d"}, annotations={symbol("x-opt-bridge.key"): b"k"})
    assert to_record(message, "t", key_property="device_id").key == b"k"


@pytest.mark.parametrize(
    "annotations",
    [
        {"x-opt-bridge.partition": "1"},
        {"x-opt-bridge.partition": -1},
        {"x-opt-bridge.partition": True},
        {"x-opt-bridge.key": 1.5},
    ],
)
def test_wrongly_typed_annotations_are_invalid_field(annotations):
    message = Message(body="x", annotations={symbol(k): v for k, v in annotations.items()})
    with pytest.raises(ConversionError) as err:
        to_record(message, "t")
    assert err.value.condition == "amqp:invalid-field"


def test_kafka_to_amqp_raw_restores_fields_and_annotates():
    record = KafkaRecord(
        "temps",
        b"v",
        b"dev",
        1,
        42,
        (("amqp.subject", b"s"), ("amqp.content-type", b"text/plain"), ("unit", b"C"), ("bin", b"\xff")),
        1000,
    )
    message = roundtrip(to_message(record, "raw"))
    assert bytes(message.body) == b"v" and message.subject == "s" and message.content_type == "text/plain"
    assert message.properties == {"unit": "C", "bin": b"\xff"}
    assert dict(message.annotations) == {
        "x-opt-bridge.topic": "temps", "x-opt-bridge.partition": 1, "x-opt-bridge.offset": 42, "x-opt-bridge.key": "dev",
    }  # fmt: skip
    assert message.creation_time == 1.0


def test_kafka_to_amqp_json_rejects_malformed():
    with pytest.raises(ConversionError):
        to_message(KafkaRecord("t", b"{bad"), "json")
    with pytest.raises(ConversionError):
        to_message(KafkaRecord("t", b"\x00\x01 not amqp"), "amqp")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**62), 2**62) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_json_mode_round_trips_typed_values(value):
    record = to_record(roundtrip(Message(body=value)), "t", "json")
    back = roundtrip(to_message(KafkaRecord("t", record.value), "json"))
    assert back.body == value


def test_creation_time_is_the_record_timestamp_unless_kafka_would_refuse_it():
    now_ms = 1_764_370_000_000

    def stamp(seconds: float) -> int | None:
        return to_record(Message(body="x", creation_time=seconds), "t", now_ms=now_ms).timestamp_ms

    assert stamp(now_ms / 1000 - 86_400) == now_ms - 86_400_000  # a day old: kept
    assert stamp(-1.0) == -1000  # before 1970: Kafka takes it
    assert stamp(now_ms / 1000 + 3_599) == now_ms + 3_599_000  # within Kafka's hour ahead
    # Beyond: Kafka would refuse the record and every record batched with it (INVALID_TIMESTAMP), so Kafka stamps it.
    assert stamp(now_ms / 1000 + 3_601) is None
    assert stamp(4_102_444_800.0) is None and stamp(9e15) is None
