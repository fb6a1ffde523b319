"""Kafka plumbing off the reactor thread: one shared producer, one consumer per outbound link, an admin helper.

The proton reactor must never block, so every Kafka call that can wait runs on a thread
here, and results go back as items in a deque plus one call per batch: a ``Signal`` that
wakes the reactor once however many items are waiting, or, for the producer's reports,
``on_reports`` (which settles them on the report thread if the reactor is parked in
``select``: ``amqp_kafka_bridge.reactor_lock``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from amqp_kafka_bridge.converters import KafkaRecord, headers_from_kafka
from amqp_kafka_bridge.errors import INTERNAL_ERROR, NOT_FOUND, RESOURCE_LIMIT_EXCEEDED, AmqpConditionError

log = logging.getLogger("bridge.kafka")
_client_log = logging.getLogger("bridge.librdkafka")  # librdkafka's own lines, instead of raw stderr


class Ack(NamedTuple):
    """A delivery report: ``error`` is None on success; ``token`` is what ``produce`` was given.

    A named tuple rather than a frozen dataclass, and nothing the bridge does not read: one is
    built per record on the producer's poll thread while it holds the GIL.
    """

    token: Any
    error: KafkaError | None


class Signal:
    """Coalesces wake-ups: ``set`` calls ``wake`` only when no wake-up is pending; the reactor ``clear``s before draining."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._lock = threading.Lock()
        self._pending = False

    def set(self) -> None:
        if self._pending:  # read without the lock: a wake-up is already on its way (the common case under load)
            return
        with self._lock:
            if self._pending:
                return
            self._pending = True
        self._wake()

    def clear(self) -> None:
        with self._lock:
            self._pending = False


class PolledProducer:
    """A producer whose delivery reports a thread of its own serves (``_run``), calling ``on_reports`` when some are in."""

    def __init__(self, on_reports: Callable[[], None]) -> None:
        self._on_reports = on_reports
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bridge-producer", daemon=True)
        self.last_error: str | None = None

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` for outstanding reports; returns how many are still outstanding."""
        raise NotImplementedError

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)


class ProducerPump(PolledProducer):
    """The bridge's idempotent producer (``acks=all``) and the thread that serves its delivery reports.

    ``produce`` is non-blocking and may be called from the reactor thread; reports land in
    ``acks`` in completion order, and after each poll that brought some, the poll thread calls
    ``on_reports`` (which settles them itself or wakes the reactor: ``BridgeCore.on_reports``).
    A full local queue raises ``BufferError`` at once (the caller releases that delivery).
    """

    def __init__(self, config: dict[str, Any], on_reports: Callable[[], None]) -> None:
        super().__init__(on_reports)
        self._config = dict(config, error_cb=self._on_error, logger=_client_log)
        self.producer = Producer(self._config)
        self.acks: deque[Ack] = deque()
        self._fatal = False

    def _on_error(self, err: KafkaError) -> None:
        self.last_error = str(err)
        if err.fatal():
            self._fatal = True
        log.warning("kafka producer error", extra={"error": str(err), "fatal": err.fatal()})

    def _replace_fatal_producer(self) -> None:
        """An idempotent producer that hit a fatal error refuses all further work: start a new one, and fail
        what the old one still held (its reports arrive as errors, so those deliveries are released)."""
        self._fatal = False
        old, self.producer = self.producer, Producer(self._config)
        log.error("kafka producer failed fatally; replaced", extra={"error": self.last_error})
        old.purge()
        old.flush(5)

    def produce(self, record: KafkaRecord, token: Any) -> None:
        acks = self.acks

        def report(err: KafkaError | None, _msg: Any) -> None:
            acks.append(Ack(token, err))

        # -1 (unassigned: the partitioner picks), timestamp 0 (Kafka stamps it) and no headers are
        # the client's own defaults; passing them spares a keyword dict per record.
        self.producer.produce(
            record.topic,
            value=record.value,
            key=record.key,
            partition=-1 if record.partition is None else record.partition,
            on_delivery=report,
            timestamp=record.timestamp_ms or 0,
            headers=list(record.headers) if record.headers else None,
        )

    def settle(self) -> tuple[list[Ack], list[Any], list[Any]]:
        """The reports waiting, as ``Ack`` s for their tokens (``LanePump.settle``'s shape: no per link counts or failures here)."""
        acks = self.acks
        return [acks.popleft() for _ in range(len(acks))], [], []

    def _run(self) -> None:
        acks = self.acks
        while not self._stop.is_set():
            self.producer.poll(0.05)
            if acks:
                self._on_reports()
            if self._fatal:
                self._replace_fatal_producer()

    def flush(self, timeout: float) -> int:
        return self.producer.flush(timeout)

    def reachable(self, timeout: float = 2.0) -> bool:
        try:
            self.producer.list_topics(timeout=timeout)
            return True
        except KafkaException:
            return False


@dataclass(frozen=True)
class SourceSpec:
    """What an outbound link reads: ``partition``/``offset`` filters assign instead of subscribing to ``group``."""

    topic: str
    group: str
    partition: int | None = None
    offset: int | None = None  # None: the group's committed position (else auto.offset.reset)


class ConsumerPump:
    """One consumer feeding one AMQP sender link, on its own thread.

    Holds at most ``window`` records not yet sent (the link's credit window); when they pile
    up because the peer gives no credit, the assignment is paused until the link drains them. Records
    land in ``records`` and ``signal`` is set. Offsets are committed only when the reactor
    calls ``commit`` (from an ``OffsetTracker``); a final commit happens on ``close``.
    """

    def __init__(self, config: dict[str, Any], spec: SourceSpec, signal: Signal, window: int = 1000, batch: int = 500) -> None:
        self.spec = spec
        self.window = window
        self.config = config
        self.records: deque[KafkaRecord] = deque()
        self.demand = 0
        self.revoked: deque[list[int]] = deque()
        self.error: str | None = None
        self._signal = signal
        self._batch = batch
        self._commits: dict[int, int] = {}
        self._commit_lock = threading.Lock()
        self._stop = threading.Event()
        self._paused = False
        self.pause_after_s = 0.5
        self.room = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"bridge-consumer-{spec.topic}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def commit(self, positions: dict[int, int]) -> None:
        with self._commit_lock:
            self._commits.update(positions)

    def close(self) -> None:
        """Ask the thread to commit what is committable, leave the group and exit (does not wait)."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _take_commits(self) -> list[TopicPartition]:
        with self._commit_lock:
            commits, self._commits = self._commits, {}
        return [TopicPartition(self.spec.topic, p, o) for p, o in commits.items()]

    def _flush_commits(self, consumer: Consumer, asynchronous: bool) -> None:
        offsets = self._take_commits()
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=asynchronous)
            except KafkaException as exc:
                log.warning("offset commit failed", extra={"topic": self.spec.topic, "error": str(exc)})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._flush_commits(consumer, asynchronous=False)
        self.revoked.append([tp.partition for tp in partitions])
        self._signal.set()

    def _run(self) -> None:
        spec = self.spec
        consumer = Consumer(dict(self.config, logger=_client_log))
        try:
            if spec.partition is not None:
                offset = (
                    OFFSET_BEGINNING
                    if spec.offset is None and self.config.get("auto.offset.reset") == "earliest"
                    else spec.offset
                )
                if offset is None:
                    committed = consumer.committed([TopicPartition(spec.topic, spec.partition)], timeout=10)
                    offset = committed[0].offset if committed and committed[0].offset >= 0 else OFFSET_END
                consumer.assign([TopicPartition(spec.topic, spec.partition, offset)])
            else:
                consumer.subscribe([spec.topic], on_revoke=self._on_revoke, on_lost=self._on_revoke)
            full_since = 0.0
            while not self._stop.is_set():
                self._flush_commits(consumer, asynchronous=True)
                # Read ahead up to ``window`` records, in batches. When the window stays full (the
                # receiver gives no credit) for ``pause_after_s``, pause the assignment. Pausing at
                # every momentary stall would drop librdkafka's prefetch and cost a fetch round trip.
                want = min(self.window - len(self.records), self._batch)
                if want <= 0:
                    full_since = full_since or time.monotonic()
                    if time.monotonic() - full_since < self.pause_after_s:
                        self.room.wait(0.01)  # the reactor sets it as it sends
                        self.room.clear()
                        continue
                    self._pause(consumer, True)
                    consumer.poll(0.05)  # serves callbacks and heartbeats; returns nothing while paused
                    continue
                full_since = 0.0
                self._pause(consumer, False)
                batch = consumer.consume(num_messages=want, timeout=0.05)
                records = self._convert(batch)
                if records:
                    self.records.extend(records)
                    self._signal.set()
        except Exception as exc:  # noqa: BLE001 - any client failure ends this link, and the reactor reports it
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("consumer failed", extra={"topic": spec.topic, "error": self.error})
            self._signal.set()
        finally:
            self._flush_commits(consumer, asynchronous=False)
            consumer.close()

    def _pause(self, consumer: Consumer, pause: bool) -> None:
        if pause == self._paused:
            return
        assignment = consumer.assignment()
        if assignment:
            (consumer.pause if pause else consumer.resume)(assignment)
            self._paused = pause

    def _convert(self, batch: Iterable[Any]) -> list[KafkaRecord]:
        records = []
        for msg in batch:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error", extra={"topic": self.spec.topic, "error": str(err)})
                continue
            ts_type, ts = msg.timestamp()
            records.append(
                KafkaRecord(
                    msg.topic(),
                    msg.value(),
                    msg.key(),
                    msg.partition(),
                    msg.offset(),
                    headers_from_kafka(msg.headers()),
                    ts or None,
                )
            )
        return records


class TopicAdmin:
    """Topic existence checks and creation on a worker thread; results come back through ``done`` callbacks."""

    def __init__(self, config: dict[str, Any], partitions: int) -> None:
        self._admin = AdminClient(dict(config, logger=_client_log))
        self._partitions = partitions
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bridge-admin")
        self._known: set[str] = set()

    def check(self, topic: str, create: bool, timeout: float = 10.0) -> Future[None]:
        """Future that completes when ``topic`` exists (or was created), or fails with the
        :class:`AmqpConditionError` to detach the link with."""
        return self._pool.submit(self._check, topic, create, timeout)

    def _check(self, topic: str, create: bool, timeout: float) -> None:
        if topic in self._known:
            return
        try:
            meta = self._admin.list_topics(topic=topic, timeout=timeout)
        except KafkaException as exc:
            raise AmqpConditionError(RESOURCE_LIMIT_EXCEEDED, f"Kafka unreachable: {exc}") from None
        tmeta = meta.topics.get(topic)
        if tmeta is not None and tmeta.error is None and tmeta.partitions:
            self._known.add(topic)
            return
        if not create:
            raise AmqpConditionError(NOT_FOUND, f"Kafka topic {topic!r} does not exist and topic auto-creation is off")
        futures = self._admin.create_topics([NewTopic(topic, self._partitions, 1)], operation_timeout=timeout)
        try:
            futures[topic].result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise AmqpConditionError(INTERNAL_ERROR, f"cannot create Kafka topic {topic!r}: {exc}") from None
        self._known.add(topic)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
