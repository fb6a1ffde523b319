"""Counting what reaches Kafka during this run, live, from the offsets the topics had at its start."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

# What a just-created topic or just-started broker answers for a moment.
_TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
}


class KafkaTally:
    """Counts records appended to ``topics`` after construction; calls ``on_record(topic, value)`` for each.

    The start offsets are the partitions' high watermarks when the tally is created, so
    create it after the topics exist and before anything produces to them.
    """

    def __init__(
        self, bootstrap: str, topics: list[str], on_record: Callable[[str, bytes], None] | None = None, timeout: float = 10.0
    ) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "demo-tally",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self._stop = threading.Event()
        metadata = self._consumer.list_topics(timeout=timeout).topics
        deadline = time.monotonic() + timeout
        assignment = [
            TopicPartition(topic, partition, self._end_offset(topic, partition, deadline))
            for topic in topics
            for partition in metadata[topic].partitions
        ]
        self._consumer.assign(assignment)
        self.counts = {t: 0 for t in topics}
        self._on_record = on_record
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="kafka-tally", daemon=True)
        self._thread.start()

    def _end_offset(self, topic: str, partition: int, deadline: float) -> int:
        """The partition's high watermark; retried while the error is retriable (a leader still being elected)."""
        while True:
            try:
                return self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5.0)[1]
            except KafkaException as exc:
                if exc.args[0].code() not in _TRANSIENT or time.monotonic() > deadline:
                    raise
            self._stop.wait(0.2)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                msg = self._consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                with self._lock:
                    self.counts[msg.topic()] += 1
                if self._on_record is not None:
                    self._on_record(msg.topic(), msg.value())
        finally:
            self._consumer.close()

    def count(self, topic: str) -> int:
        with self._lock:
            return self.counts[topic]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def window_end_ms(body: str | bytes) -> int:
    """``window_end`` of a result body as epoch milliseconds."""
    text = json.loads(body)["window_end"].replace("Z", "+00:00")
    return int(datetime.fromisoformat(text).timestamp() * 1000)
