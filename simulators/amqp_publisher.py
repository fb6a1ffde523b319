"""At-least-once AMQP 1.0 publisher of readings (a small proton handler).

Deliveries are sent unsettled; a reading counts as delivered only when the
peer settles it ``accepted``. ``released``/``modified`` and a lost connection
put the reading back at the head of the queue to be sent again (so a reading
may reach the broker twice, never zero times); ``rejected`` is final and
counted. Works against a broker or the bridge, which speak the same protocol.

A timer tick pulls due readings from the :class:`~simulators.feed.ReadingFeed`
and refreshes the progress line; ``on_sendable`` sends while there is credit.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from amqp_message_model.brokers import QueueProbe, missing_queue_reason, needs_queue_probe
from amqp_message_model.connection import ConnectionOptions, connect_kwargs, parse_endpoints
from proton import Event
from proton.handlers import MessagingHandler
from proton.reactor import Container

from simulators.feed import ReadingFeed
from simulators.messages import reading_to_message
from simulators.model import Reading
from simulators.progress import ProgressLine, Stats

log = logging.getLogger(__name__)


class AmqpPublisher(MessagingHandler):
    """Publishes the feed to ``address`` at ``url`` until the feed is finished and settled.

    ``on_accepted`` is called once per accepted reading (e.g. the accepted
    log). After the feed finished, the handler waits up to ``drain_timeout``
    seconds for outstanding deliveries, then closes the connection.
    """

    def __init__(
        self,
        url: str,
        address: str,
        feed: ReadingFeed,
        on_accepted: Callable[[Reading], None] = lambda r: None,
        progress: ProgressLine | None = None,
        tick: float = 0.02,
        drain_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(prefetch=0, auto_settle=True)
        self.url, self.address, self.feed = url, address, feed
        self.on_accepted_reading = on_accepted
        self.progress = progress or ProgressLine(enabled=False)
        self.tick, self.drain_timeout, self.clock = tick, drain_timeout, clock
        self.stats = Stats()
        self.error: str | None = None
        self._pending: deque[Reading] = deque()
        self._in_flight: dict[str, Reading] = {}
        self._next_tag = 0
        self._started = clock()
        self._drain_deadline: float | None = None
        self._sender = None
        self._connection = None
        self._closed = False
        self._probe: QueueProbe | None = None  # RabbitMQ /amq/queue/ target not verified yet
        self._verified = False

    def request_stop(self) -> None:
        """Stop producing new readings; outstanding ones still get settled (signal-safe)."""
        self.feed.stop()

    def on_start(self, event: Event) -> None:
        # Every comma-separated URL, in failover order; the heartbeat drops a silently vanished broker.
        self._connection = event.container.connect(**connect_kwargs(connection_options(self.url), reconnect=True))
        self._sender = event.container.create_sender(self._connection, self.address)
        event.container.schedule(0, self)

    def on_timer_task(self, event: Event) -> None:
        if self._closed:
            return
        now = self.clock()
        self._pending.extend(self.feed.poll(now))
        self._send()
        self.progress.update(self.stats, now - self._started, now)
        if self.feed.finished(now):
            if self._drain_deadline is None:
                self._drain_deadline = now + self.drain_timeout
            if not self._pending and not self._in_flight:
                self._close()
                return
            if now >= self._drain_deadline:
                self.error = (
                    f"gave up after {self.drain_timeout}s with {len(self._pending) + len(self._in_flight)} readings not accepted"
                )
                self._close()
                event.container.stop()
                return
        event.container.schedule(self.tick, self)

    def on_sendable(self, event: Event) -> None:
        self._send()

    def _send(self) -> None:
        sender = self._sender
        if sender is None or self._probe is not None:
            return
        while sender.credit and self._pending:
            reading = self._pending.popleft()
            tag = str(self._next_tag)
            self._next_tag += 1
            sender.send(reading_to_message(reading), tag=tag)
            self._in_flight[tag] = reading
            self.stats.sent += 1

    def on_accepted(self, event: Event) -> None:
        reading = self._in_flight.pop(event.delivery.tag, None)
        if reading is not None:
            self.stats.accepted += 1
            self.on_accepted_reading(reading)

    def on_released(self, event: Event) -> None:
        # Released or modified: the broker did not take it; send it again.
        reading = self._in_flight.pop(event.delivery.tag, None)
        if reading is not None:
            self.stats.resent += 1
            self._pending.appendleft(reading)
            self._send()

    def on_rejected(self, event: Event) -> None:
        reading = self._in_flight.pop(event.delivery.tag, None)
        if reading is not None:
            self.stats.rejected += 1
            cond = event.delivery.remote.condition
            log.warning("rejected %s: %s", reading.to_json(), cond)

    def on_disconnected(self, event: Event) -> None:
        self._probe = None  # probed again on the new connection unless verified already
        # Unsettled deliveries on a lost connection have unknown fate: resend
        # them (in their original order) once proton has reconnected.
        if not self._closed:
            log.warning("disconnected from %s; reconnecting", self.url)
        if self._in_flight:
            lost = list(self._in_flight.values())
            self._in_flight.clear()
            self.stats.resent += len(lost)
            self._pending.extendleft(reversed(lost))
            log.warning("disconnected; %d unsettled readings will be resent", len(lost))

    def on_connection_opened(self, event: Event) -> None:
        self.error = None  # a reconnect succeeded; earlier transport errors are history
        if not self._verified and needs_queue_probe(event.connection, self.address):
            self._probe = QueueProbe(event.container, event.connection, self.address, self._on_probe_verified)

    def _on_probe_verified(self, address: str) -> None:
        self._probe, self._verified = None, True
        self._send()

    def on_session_error(self, event: Event) -> None:
        cond = event.session.remote_condition
        if self._probe is not None and event.session == self._probe.session:
            self.error = missing_queue_reason(self.address, cond)
        else:
            self.error = f"session error {cond.name}: {cond.description}" if cond else "session error"
        self.feed.stop()
        self._pending.clear()
        self._closed = True
        event.connection.close()

    def on_transport_error(self, event: Event) -> None:
        cond = event.transport.condition
        self.error = f"{cond.name}: {cond.description}" if cond else "transport error"
        log.warning("%s (reconnecting)", self.error)
        super().on_transport_error(event)

    def on_link_error(self, event: Event) -> None:
        cond = event.link.remote_condition
        self.error = f"link error {cond.name}: {cond.description}" if cond else "link error"
        self.feed.stop()
        self._pending.clear()
        self._closed = True
        event.connection.close()

    def on_connection_error(self, event: Event) -> None:
        cond = event.connection.remote_condition
        self.error = f"connection error {cond.name}: {cond.description}" if cond else "connection error"
        self.feed.stop()
        self._closed = True
        event.connection.close()

    def _close(self) -> None:
        self._closed = True
        now = self.clock()
        self.progress.update(self.stats, now - self._started, now, final=True)
        if self._connection is not None:
            self._connection.close()


def connection_options(url: str) -> ConnectionOptions:
    """The simulators' connection: ``url`` may list several brokers for failover; a silent peer is dropped after 5 s."""
    return ConnectionOptions(parse_endpoints(url), connect_timeout_s=5.0, max_reconnect_delay_s=5.0)


def publish_amqp(publisher: AmqpPublisher) -> Stats:
    """Run ``publisher`` in a proton container until it is done; returns its counters."""
    Container(publisher).run()
    return publisher.stats
