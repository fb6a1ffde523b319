"""Server mode, AMQP -> Kafka, against the real Kafka: body types, keys, partitions, headers, errors."""

from __future__ import annotations

import json
import uuid

import pytest
from proton import Message, symbol

from tests.bridge.clients import send
from tests.bridge.helpers import consume, create_topic

pytestmark = pytest.mark.integration


def test_every_body_type_lands_in_kafka_raw(start_bridge, kafka_bootstrap, unique_name):
    bridge = start_bridge(converter="raw")
    topic = unique_name("bridge")
    bodies = [
        (Message(body=b"\x00\x01binary", inferred=True), b"\x00\x01binary"),  # data section
        (Message(body="text"), b"text"),
        (Message(body=b"value-bytes"), b"value-bytes"),  # amqp-value binary
        (Message(body=42), b"42"),
        (Message(body=2.5), b"2.5"),
        (Message(body=True), b"true"),
        (Message(body=[1, "a"]), b'[1,"a"]'),
        (Message(body={"k": 1}), b'{"k":1}'),
        (Message(body=[1, 2, 3], inferred=True), b"[1,2,3]"),  # amqp-sequence
    ]
    result = send(bridge.url, topic, [m for m, _ in bodies])
    assert result.outcomes == ["accepted"] * len(bodies), result
    records = consume(kafka_bootstrap, topic, len(bodies))
    assert [r.value() for r in records] == [v for _, v in bodies]


def test_keys_partitions_and_headers(start_bridge, kafka_bootstrap, unique_name):
    topic = unique_name("bridge")
    create_topic(kafka_bootstrap, topic, partitions=3)
    bridge = start_bridge(key_property="device_id")
    messages = [
        Message(body=b"a", inferred=True, annotations={symbol("x-opt-bridge.key"): "k1", symbol("x-opt-bridge.partition"): 2}),
        Message(
            body=b"b",
            inferred=True,
            properties={"device_id": "device-7", "unit": "C"},
            subject="temp",
            id="m-1",
            content_type="application/json",
        ),
        Message(body=b"c", inferred=True, annotations={symbol("x-opt-bridge.partition"): 1}),
    ]
    assert send(bridge.url, topic, messages).outcomes == ["accepted"] * 3
    by_value = {r.value(): r for r in consume(kafka_bootstrap, topic, 3)}
    assert by_value[b"a"].key() == b"k1" and by_value[b"a"].partition() == 2
    assert by_value[b"c"].partition() == 1
    b = by_value[b"b"]
    assert b.key() == b"device-7"
    headers = dict(b.headers())
    assert headers["device_id"] == b"device-7" and headers["unit"] == b"C"
    assert (
        headers["amqp.subject"] == b"temp"
        and headers["amqp.message-id"] == b"m-1"
        and headers["amqp.content-type"] == b"application/json"
    )


def test_same_device_keeps_one_partition(start_bridge, kafka_bootstrap, unique_name):
    topic = unique_name("bridge")
    create_topic(kafka_bootstrap, topic, partitions=3)
    bridge = start_bridge(key_property="device_id")
    messages = [Message(body=f"{i}".encode(), inferred=True, properties={"device_id": f"d{i % 4}"}) for i in range(40)]
    assert send(bridge.url, topic, messages).count("accepted") == 40
    partitions: dict[bytes, set[int]] = {}
    for r in consume(kafka_bootstrap, topic, 40):
        partitions.setdefault(r.key(), set()).add(r.partition())
    assert len(partitions) == 4 and all(len(p) == 1 for p in partitions.values())


def test_json_converter_rejects_malformed_and_keeps_going(start_bridge, kafka_bootstrap, unique_name):
    bridge = start_bridge(converter="json")
    topic = unique_name("bridge")
    messages = [Message(body=b'{"t": 1}', inferred=True), Message(body=b"{not json", inferred=True), Message(body={"t": 2})]
    result = send(bridge.url, topic, messages)
    assert result.outcomes == ["accepted", "rejected", "accepted"]
    assert result.conditions[1].startswith("amqp:decode-error")
    assert [json.loads(r.value()) for r in consume(kafka_bootstrap, topic, 2)] == [{"t": 1}, {"t": 2}]


def test_amqp_converter_keeps_the_whole_message(start_bridge, kafka_bootstrap, unique_name):
    bridge = start_bridge(converter="amqp")
    topic = unique_name("bridge")
    original = Message(body={"x": [1, 2]}, subject="s", id=uuid.uuid4(), properties={"p": 1}, content_type="application/x")
    assert send(bridge.url, topic, [original]).outcomes == ["accepted"]
    (record,) = consume(kafka_bootstrap, topic, 1)
    decoded = Message()
    decoded.decode(record.value())
    assert (decoded.body, decoded.subject, decoded.id, decoded.properties) == (original.body, "s", original.id, {"p": 1})


def test_wrong_annotation_type_and_oversize_are_rejected(start_bridge, kafka_bootstrap, unique_name):
    bridge = start_bridge(max_message_bytes=2000)
    topic = unique_name("bridge")
    messages = [
        Message(body=b"ok-1", inferred=True),
        Message(body=b"x", inferred=True, annotations={symbol("x-opt-bridge.partition"): "zero"}),
        Message(body=b"x", inferred=True, annotations={symbol("x-opt-bridge.key"): 3.5}),
        Message(body=b"x" * 5000, inferred=True),
        Message(body=b"ok-2", inferred=True),
    ]
    result = send(bridge.url, topic, messages)
    assert result.outcomes == ["accepted", "rejected", "rejected", "rejected", "accepted"]
    assert result.conditions[1].startswith("amqp:invalid-field") and result.conditions[2].startswith("amqp:invalid-field")
    assert result.conditions[3].startswith("amqp:link:message-size-exceeded")
    assert [r.value() for r in consume(kafka_bootstrap, topic, 2)] == [b"ok-1", b"ok-2"]
    metrics = bridge.metrics.render().decode()
    assert 'bridge_rejected_messages_total{reason="invalid-field"' in metrics
    assert 'reason="size"' in metrics


def test_unknown_topic_without_auto_create_detaches_not_found(start_bridge, unique_name):
    bridge = start_bridge(auto_create_topics=False)
    result = send(bridge.url, unique_name("missing"), [Message(body="x")], timeout=20)
    assert result.link_error is not None and result.link_error.startswith("amqp:not-found"), result


def test_presettled_sender_is_at_most_once_but_delivered(start_bridge, kafka_bootstrap, unique_name):
    bridge = start_bridge()
    topic = unique_name("bridge")
    result = send(bridge.url, topic, [Message(body=f"{i}".encode(), inferred=True) for i in range(50)], presettled=True)
    assert result.count("presettled") == 50
    assert len(consume(kafka_bootstrap, topic, 50)) == 50


def test_kafka_unreachable_at_attach_detaches_with_a_clear_condition(start_bridge, unique_name):
    from tests.bridge.helpers import free_port

    bridge = start_bridge(kafka_bootstrap=f"127.0.0.1:{free_port()}", delivery_timeout_s=1.5, auto_create_topics=True)
    # The topic check cannot reach Kafka: the link is detached with a clear condition instead of hanging.
    result = send(bridge.url, unique_name("down"), [Message(body="x")], timeout=30)
    assert result.link_error is not None and "Kafka unreachable" in result.link_error
    assert bridge.healthy()
