"""At-least-once Kafka publisher of readings, for runs without AMQP in the path.

Records: topic = the address, key = device id (so a device's readings stay in
one partition, in order), value = the reading's JSON, headers ``device_id``
and ``content_type``. The producer is idempotent with ``acks=all``; a reading
counts as delivered only in its delivery report, and a retriable failure
puts it back in the queue (at-least-once).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from confluent_kafka import KafkaError, Message, Producer

from simulators.feed import ReadingFeed
from simulators.messages import CONTENT_TYPE
from simulators.model import Reading
from simulators.progress import ProgressLine, Stats

log = logging.getLogger(__name__)


class KafkaPublisher:
    """Produces the feed to ``topic``; :meth:`run` returns when all is acknowledged."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        feed: ReadingFeed,
        on_accepted: Callable[[Reading], None] = lambda r: None,
        progress: ProgressLine | None = None,
        tick: float = 0.02,
        drain_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        config: dict[str, object] | None = None,
    ) -> None:
        self.topic, self.feed = topic, feed
        self.on_accepted_reading = on_accepted
        self.progress = progress or ProgressLine(enabled=False)
        self.tick, self.drain_timeout, self.clock = tick, drain_timeout, clock
        self.stats = Stats()
        self.error: str | None = None
        self._pending: deque[Reading] = deque()
        self._outstanding = 0
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                **(config or {}),
            }
        )

    def request_stop(self) -> None:
        """Stop producing new readings; outstanding ones still get acknowledged."""
        self.feed.stop()

    def _report(self, reading: Reading) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            self._outstanding -= 1
            if err is None:
                self.stats.accepted += 1
                self.on_accepted_reading(reading)
            elif err.retriable():
                self.stats.resent += 1
                self._pending.appendleft(reading)
            else:
                self.stats.rejected += 1
                self.error = str(err)
                log.warning("not delivered %s: %s", reading.to_json(), err)

        return on_delivery

    def _send(self) -> None:
        while self._pending:
            reading = self._pending[0]
            try:
                self._producer.produce(
                    self.topic,
                    value=reading.to_json().encode("utf-8"),
                    key=reading.device_id.encode("utf-8"),
                    headers=[("device_id", reading.device_id), ("content_type", CONTENT_TYPE)],
                    on_delivery=self._report(reading),
                )
            except BufferError:
                return  # local queue full: back-pressure, retry after the next poll
            self._pending.popleft()
            self._outstanding += 1
            self.stats.sent += 1

    def run(self) -> Stats:
        started = self.clock()
        deadline: float | None = None
        try:
            while True:
                now = self.clock()
                self._pending.extend(self.feed.poll(now))
                self._send()
                self._producer.poll(self.tick)  # serves delivery reports, bounded wait
                self.progress.update(self.stats, now - started, now)
                if self.feed.finished(now):
                    if not self._pending and not self._outstanding:
                        break
                    deadline = deadline or now + self.drain_timeout
                    if now >= deadline:
                        self.error = (
                            f"gave up after {self.drain_timeout}s with "
                            f"{len(self._pending) + self._outstanding} readings not acknowledged"
                        )
                        break
        finally:
            self._producer.flush(1.0)
            now = self.clock()
            self.progress.update(self.stats, now - started, now, final=True)
        return self.stats
