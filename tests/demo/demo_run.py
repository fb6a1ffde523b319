"""What one demo run left behind, and reading a topic to its end."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from demo.settings import DemoSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
PUBLISH_SECONDS = 30
WINDOW_MS = 5000
WATERMARK_MS = 10_000


@dataclass(frozen=True)
class DemoRun:
    """What one demo run left behind and printed."""

    state_dir: Path
    temperature_address: str
    max_address: str
    temperature_topic: str
    max_topic: str
    returncode: int
    output: str
    seconds: float

    @property
    def accepted_log(self) -> Path:
        return DemoSettings(state_dir=self.state_dir).accepted_log

    @property
    def amqp_results(self) -> Path:
        return DemoSettings(state_dir=self.state_dir).amqp_results


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[bytes]:
    """Every value in ``topic`` up to the end offsets it had when called (deadline ``timeout``)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex}", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        ends: dict[int, int] = {}
        assignment = []
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high > low:
                ends[p] = high
                assignment.append(TopicPartition(topic, p, low))
        consumer.assign(assignment)
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            values.append(msg.value())
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
        assert not ends, f"timed out reading {topic} to its end"
        return values
    finally:
        consumer.close()
