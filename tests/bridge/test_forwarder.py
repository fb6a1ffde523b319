"""Forwarder mode against the real Artemis and Kafka: address -> topic, topic -> address, failover URLs, credentials."""

from __future__ import annotations

import pytest
from amqp_kafka_bridge import Route
from proton import Message

from tests.bridge.clients import receive, send
from tests.bridge.helpers import consume, free_port, produce

pytestmark = pytest.mark.integration


def test_forwards_both_ways_with_failover_and_credentials(start_bridge, amqp_url, kafka_bootstrap, unique_name):
    address_in, topic_in = unique_name("fwd-in"), unique_name("fwd-in-topic")
    topic_out, address_out = unique_name("fwd-out-topic"), unique_name("fwd-out")
    host_port = amqp_url.split("://", 1)[1]
    dead = f"amqp://127.0.0.1:{free_port()}"  # the first URL is down: the forwarder fails over
    start_bridge(
        mode="forwarder",
        broker_urls=[dead, f"amqp://admin:admin@{host_port}"],
        key_property="device_id",
        routes=[
            Route(address=address_in, topic=topic_in),
            Route(address=address_out, topic=topic_out, direction="to-amqp", group="fwd"),
        ],
    )
    messages = [Message(body=f'{{"n": {i}}}'.encode(), inferred=True, properties={"device_id": f"d{i % 3}"}) for i in range(100)]
    assert send(amqp_url, address_in, messages).count("accepted") == 100
    records = consume(kafka_bootstrap, topic_in, 100)
    assert sorted(r.value() for r in records) == sorted(m.body for m in messages)
    assert {r.key() for r in records} == {b"d0", b"d1", b"d2"}

    produce(kafka_bootstrap, topic_out, [{"value": f"out-{i}".encode(), "headers": [("h", b"v")]} for i in range(50)])
    got = receive(amqp_url, address_out, 50)
    assert sorted(bytes(m.body) for m in got.messages) == sorted(f"out-{i}".encode() for i in range(50))
    assert got.messages[0].properties["h"] == "v"
    assert got.messages[0].annotations["x-opt-bridge.topic"] == topic_out


def test_forwarder_survives_a_broker_restart(start_bridge, local_services, amqp_url, kafka_bootstrap, unique_name):
    if local_services is None:
        pytest.skip("needs the session's own Artemis to stop and start (AMQP_URL/KAFKA_BOOTSTRAP point elsewhere)")
    address, topic = unique_name("fwd-restart"), unique_name("fwd-restart-topic")
    bridge = start_bridge(mode="forwarder", broker_urls=[amqp_url], routes=[Route(address=address, topic=topic)])
    first = [Message(body=f"a{i}".encode(), inferred=True) for i in range(50)]
    assert send(amqp_url, address, first).count("accepted") == 50
    assert len(consume(kafka_bootstrap, topic, 50)) == 50
    local_services.artemis.stop()
    local_services.artemis.start()
    local_services.artemis.wait_ready()
    second = [Message(body=f"b{i}".encode(), inferred=True) for i in range(50)]
    assert send(amqp_url, address, second).count("accepted") == 50
    want = {m.body for m in first + second}
    records = consume(kafka_bootstrap, topic, 200, timeout=60, until=lambda got: want <= {r.value() for r in got})
    assert want <= {r.value() for r in records}
    assert bridge.healthy()
