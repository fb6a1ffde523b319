"""What an operator reads from /metrics beyond message counts: consumer lag from librdkafka's statistics."""

from __future__ import annotations

import contextlib
import time

import pytest
from proton import Timeout
from proton.utils import BlockingConnection

from tests.bridge.helpers import create_topic, produce

pytestmark = pytest.mark.integration


def lag(text: str, topic: str, group: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("bridge_kafka_consumer_lag{") and f'topic="{topic}"' in line and f'group="{group}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_lag(conn, bridge, topic: str, group: str, expected: float, timeout: float = 30.0) -> float | None:  # noqa: ANN001
    """Run the client's connection (its dispositions must reach the bridge) until the gauge shows ``expected``."""
    with contextlib.suppress(Timeout):
        conn.wait(lambda: lag(bridge.metrics.render().decode(), topic, group) == expected, timeout=timeout)
    return lag(bridge.metrics.render().decode(), topic, group)


def test_consumer_lag_falls_to_zero_when_the_receiver_catches_up(start_bridge, kafka_bootstrap, unique_name):
    bridge = start_bridge(kafka_stats_interval_s=0.5)
    topic, group = unique_name("lag"), unique_name("g")
    create_topic(kafka_bootstrap, topic)
    produce(kafka_bootstrap, topic, [{"value": f"r{i}".encode()} for i in range(20)])
    conn = BlockingConnection(bridge.url, timeout=30)
    try:
        receiver = conn.create_receiver(f"{topic}/group.id/{group}", credit=10)
        for _ in range(10):
            receiver.receive(timeout=30)
            receiver.accept()
        assert wait_lag(conn, bridge, topic, group, 10.0) == 10.0
        for _ in range(10):
            receiver.receive(timeout=30)
            receiver.accept()
        assert wait_lag(conn, bridge, topic, group, 0.0) == 0.0
        text = bridge.metrics.render().decode()
        assert "bridge_kafka_producer_queue_messages" in text
    finally:
        conn.close()
    deadline = time.monotonic() + 30
    while lag(bridge.metrics.render().decode(), topic, group) is not None and time.monotonic() < deadline:
        time.sleep(0.1)  # the link closes on the reactor thread; its series goes with it
    assert lag(bridge.metrics.render().decode(), topic, group) is None
