"""Where the accepted messages went: a query that plays Spark over the ingest logs and checks off every message
number, what is left at the broker, and how many records are in the Kafka topic."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from proton.handlers import MessagingHandler
from proton.reactor import Container

from bench.soak.load import MESSAGE_NUMBER


class LogQuery(threading.Thread):
    """Plays a Spark query over the ingest logs: each trigger plans what is durable, reads it, commits (trims).

    Every record's message number is checked off, so loss and duplicates are counted exactly.
    After each trigger, the sender's gate is moved to ``rows + backlog``.
    """

    def __init__(self, procs: Sequence[Any], gate: Any, backlog: int, trigger_s: float = 0.1) -> None:
        super().__init__(name="soak-query", daemon=True)
        from pyspark_amqp.wal import first_offset

        self.procs = list(procs)
        self.offsets = [first_offset(p.spec.log_folder) for p in self.procs]
        self.gate, self.backlog, self.trigger_s = gate, backlog, trigger_s
        self.rows = self.duplicates = self.batches = 0
        self.seen = bytearray()
        self.error: BaseException | None = None
        self.halt = threading.Event()
        self.target: int | None = None  # set ``caught_up`` once this many distinct messages are read
        self.caught_up = threading.Event()
        gate.value = backlog

    @property
    def unique(self) -> int:
        return self.rows - self.duplicates

    def run(self) -> None:
        try:
            while not self.halt.wait(self.trigger_s):  # a processing-time trigger
                self.trigger()
        except BaseException as err:  # noqa: BLE001 - handed to the driver, which stops the soak with it
            self.error = err

    def trigger(self) -> None:
        from pyspark_amqp.wal import read_range, trim

        for i, proc in enumerate(self.procs):
            end = proc.durable
            if end <= self.offsets[i]:
                continue
            proc.set_planned(end)  # latestOffset
            for record in read_range(proc.spec.log_folder, self.offsets[i], end):  # read
                self._check_off(record.payload)
            trim(proc.spec.log_folder, end)  # commit
            self.offsets[i] = end
            self.batches += 1
        self.gate.value = self.rows + self.backlog
        if self.target is not None and self.unique >= self.target:
            self.caught_up.set()

    def absent(self, sent: int) -> list[int]:
        """Message numbers below ``sent`` not in the log."""
        seen = self.seen[:sent].ljust(sent, b"\0")
        return [i for i, flag in enumerate(seen) if not flag]

    def _check_off(self, payload: bytes) -> None:
        found = MESSAGE_NUMBER.search(payload)
        if found is None:
            raise ValueError(f"a record in the log is not a soak message: {payload[:80]!r}")
        seq = int(found.group(1))
        if seq >= len(self.seen):
            self.seen.extend(bytes(seq + 65536 - len(self.seen)))
        if self.seen[seq]:
            self.duplicates += 1
        self.seen[seq] = 1
        self.rows += 1


class _Drain(MessagingHandler):
    def __init__(self, url: str, address: str, idle_s: float) -> None:
        super().__init__(prefetch=100)
        self.url, self.address, self.idle_s = url, address, idle_s
        self.ids: list[int] = []
        self.last = time.monotonic()

    def on_start(self, event: Any) -> None:
        self.conn = event.container.connect(self.url, reconnect=False)
        event.container.create_receiver(self.conn, self.address)
        event.container.schedule(0.1, self)

    def on_message(self, event: Any) -> None:
        self.last = time.monotonic()
        body = event.message.body
        found = MESSAGE_NUMBER.search(bytes(body) if isinstance(body, (bytes, memoryview)) else b"")
        self.ids.append(int(found.group(1)) if found else -1)

    def on_timer_task(self, event: Any) -> None:
        if time.monotonic() - self.last >= self.idle_s:
            self.conn.close()
        else:
            event.container.schedule(0.1, self)


def drain_address(url: str, address: str, idle_s: float = 2.0) -> list[int]:
    """Receive (and accept) what is left at ``address``; the message numbers, once nothing came for ``idle_s``."""
    handler = _Drain(url, address, idle_s)
    Container(handler).run()
    return handler.ids


def receiver_states(procs: Sequence[Any], query: LogQuery) -> str:
    """One line per ingest receiver: how far it made the log durable, how far it was planned and read."""
    return ", ".join(
        f"#{i} durable {p.durable} planned {p.status.planned.value} read to {query.offsets[i]} alive {p.process.is_alive()} error {p.status.error!r}"
        for i, p in enumerate(procs)
    )


def kafka_count(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` (sum over its partitions of high - low watermark)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"soak-count-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(topic, timeout=10)
        total = 0
        for partition in meta.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def log_bytes(folders: Sequence[Path]) -> int:
    """Bytes of ingest log segments on disk now (the query trims them as it commits)."""
    total = 0
    for folder in folders:
        for path in folder.glob("*.wal"):
            try:
                total += path.stat().st_size
            except FileNotFoundError:  # trimmed meanwhile
                pass
    return total
