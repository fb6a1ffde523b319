"""A plain confluent-kafka consumer for tests: what any Kafka client would read."""

from __future__ import annotations

import time

from confluent_kafka import Consumer


def consume(bootstrap: str, topic: str, count: int, timeout: float) -> list[tuple[bytes | None, bytes | None]]:
    """Read up to ``count`` records ``(key, value)`` of ``topic`` from the start, within ``timeout`` seconds."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[tuple[bytes | None, bytes | None]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < count and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                records.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return records
