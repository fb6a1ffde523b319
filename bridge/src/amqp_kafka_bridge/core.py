"""The bridge's core: the registry of bridged links above them, and the Kafka clients they share.

It attaches links (after checking the topic), detaches them with an error, drains them
(no new credit or sends; in-flight deliveries still settle) and closes them. It forwards
the Kafka threads' wake-ups to the links: producer reports to the token each record was
produced with, new consumer records to the sender links. Links get only a
:class:`~amqp_kafka_bridge.context.LinkContext` and never call back here; the core learns
that a link ended from proton (``forget``), whether the peer or the link itself closed it.

Everything here runs on the reactor thread except ``start`` and ``shutdown``, which run
before the reactor starts and after it ended, and the three signals, which Kafka threads set
(each wakes the reactor through ``wakeups``, which calls ``on_kafka_acks``, ``on_kafka_records``
or ``on_topic_checks`` there). The one exception is ``on_reports``: the producer's poll thread
runs ``on_kafka_acks`` itself while the reactor is parked in ``select`` (``reactor_lock``),
which is the same as running it on the reactor thread.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future

from proton import Link
from proton.reactor import EventInjector

from amqp_kafka_bridge import producer_lane
from amqp_kafka_bridge.context import LinkContext
from amqp_kafka_bridge.converters import converter_for
from amqp_kafka_bridge.errors import INTERNAL_ERROR, AmqpConditionError
from amqp_kafka_bridge.hot_path import HotRoutes, Wakeups, write_out
from amqp_kafka_bridge.kafka_io import ProducerPump, Signal, SourceSpec, TopicAdmin
from amqp_kafka_bridge.links import BridgedLink, InboundLink, OutboundLink
from amqp_kafka_bridge.metrics import BridgeMetrics, histogram_bounds
from amqp_kafka_bridge.producer_lane import LanePump
from amqp_kafka_bridge.reactor_lock import ReactorLock
from amqp_kafka_bridge.settings import BridgeSettings

log = logging.getLogger("bridge.core")


class BridgeCore:
    """The links of one bridge, and the producer, admin client and reactor wake-ups they share."""

    def __init__(self, settings: BridgeSettings, metrics: BridgeMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.injector = EventInjector()  # the drain request (the handler's on_bridge_drain)
        # The Kafka threads' wake-ups call these methods on the reactor thread (hot_path.Wakeups).
        self.wakeups = Wakeups(on_error=metrics.kafka_errors.labels("internal").inc)
        self.acks_signal = Signal(self.wakeups.register(self.on_kafka_acks))
        self.records_signal = Signal(self.wakeups.register(self.on_kafka_records))
        self.checks_signal = Signal(self.wakeups.register(self.on_topic_checks))
        self.reactor_lock = ReactorLock()  # held by the reactor but in select: the reports' shortcut (on_reports)
        config = {**settings.producer_config(), **metrics.producer_stats_config(settings.kafka_stats_interval_s)}
        lane = producer_lane.load() if settings.native_lane else None
        self.serve = lane.serve if lane else None  # the native lane's reader of transfers, for the hot collector
        self.producer: ProducerPump | LanePump = (
            LanePump(lane, config, self.on_reports, histogram_bounds(metrics.latency))
            if lane
            else ProducerPump(config, self.on_reports)
        )
        self.admin = TopicAdmin(settings.admin_config(), settings.topic_partitions)
        self.context = LinkContext(settings, metrics, converter_for(settings.converter), self.producer, self.records_signal)
        self._links: dict[Link, BridgedLink] = {}
        self.routes = HotRoutes()  # the bridged links' hot events, served below proton's dispatch (hot_path)
        self._checks: list[tuple[BridgedLink, Future[None]]] = []
        self._closing: list[BridgedLink] = []  # forgotten, but still waiting for a dead-letter ack to close their consumer
        self._draining = False
        self.written_early = 0  # bytes the Kafka wake-ups wrote to sockets themselves (hot_path.write_out)

    def start(self) -> None:
        """Start the producer's report thread (before the reactor runs)."""
        self.producer.start()

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def links(self) -> list[BridgedLink]:
        """The links being bridged now (a copy)."""
        return list(self._links.values())

    def bridged(self, link: Link) -> BridgedLink | None:
        """The bridged state of a proton link, or None (never attached, refused, or already forgotten)."""
        return self._links.get(link)

    def attach_inbound(self, link: Link, topic: str, create: bool | None = None) -> None:
        """Bridge ``link`` (the bridge receives on it) to ``topic``; credit flows once the topic check passes.

        ``create``: whether a missing topic is created (default ``auto_create_topics``; the acl may say no).
        """
        self._attach(InboundLink(self.context, link, topic), create)

    def attach_outbound(self, link: Link, spec: SourceSpec, create: bool | None = None) -> None:
        """Bridge ``spec``'s topic to ``link`` (the bridge sends on it); the consumer starts once the topic check passes."""
        self._attach(OutboundLink(self.context, link, spec), create)

    def _attach(self, bridged: BridgedLink, create: bool | None = None) -> None:
        self._links[bridged.link] = bridged
        self.routes.add(bridged.link, bridged)
        self.metrics.links.labels(bridged.role).inc()
        if self._draining:
            bridged.drain()
        create = self.settings.auto_create_topics if create is None else create
        future = self.admin.check(bridged.topic, create, timeout=min(10.0, self.settings.delivery_timeout_s))
        self._checks.append((bridged, future))
        future.add_done_callback(lambda _f: self.checks_signal.set())

    def on_topic_checks(self) -> None:
        """Start the links whose topic is good; detach those whose topic check failed, with its condition."""
        self.checks_signal.clear()
        waiting = []
        for bridged, future in self._checks:
            if not future.done():
                waiting.append((bridged, future))
            elif not bridged.closed:
                error = future.exception()
                if error is None:
                    bridged.start()
                elif isinstance(error, AmqpConditionError):
                    self.detach(bridged, error)
                else:
                    self.detach(bridged, AmqpConditionError(INTERNAL_ERROR, f"topic check failed: {error}"))
        self._checks = waiting

    def detach(self, bridged: BridgedLink, error: AmqpConditionError) -> None:
        """Close ``bridged``'s link with ``error`` for the peer, and stop bridging it."""
        bridged.detach(error)
        self.forget(bridged.link)

    def forget(self, link: Link) -> None:
        """``link`` ended (closed by either side, or its connection is gone): stop bridging it and free its state."""
        bridged = self._links.pop(link, None)
        if bridged is None:
            return
        self.routes.remove(link)
        self.metrics.links.labels(bridged.role).dec()
        bridged.close()
        if not bridged.finished:
            self._closing.append(bridged)

    def on_reports(self) -> None:
        """Producer reports arrived (on the producer's poll thread): settle them here if the reactor is parked, else wake it.

        Settling here saves the wake-up's trip through the pipe, ``select`` and proton's
        dispatch before the outcome leaves (``reactor_lock``). The reactor is woken afterwards
        only if settling left it work (see ``on_kafka_acks``).
        """
        if not self.reactor_lock.try_serve(self._settle_here):
            self.acks_signal.set()

    def _settle_here(self) -> None:
        if not self.on_kafka_acks():
            self.acks_signal.set()  # the reactor takes over what settling left

    def on_kafka_acks(self) -> bool:
        """Hand each producer report to the token its record was produced with (an in-flight delivery or a dead letter).

        Returns True when nothing was left for the reactor's next pass: every report was a
        success for a receiving link and every outcome reached its socket. Then the proton
        events settling made (interest and deadline updates for sockets that wrote all they
        had) can wait for the reactor's next wake-up.
        """
        self.acks_signal.clear()
        acks, counts, failures = self.producer.settle()  # the native lane settled the acknowledged deliveries already
        acked: set[BridgedLink] = set()
        routine = not failures
        for ack in acks:
            ack.token.on_ack(ack)
            acked.add(ack.token.link)
            routine = routine and ack.error is None
        for bridged, lane_counts in counts:
            bridged.on_lane_counts(lane_counts)
            acked.add(bridged)
        for bridged, delivery, error in failures:
            bridged.on_failed_report(delivery, error)
        for bridged in acked:
            bridged.flush_credit()  # one flow per link per batch of reports
        written, left = write_out(b.link for b in acked if not b.closed)  # the outcomes leave now
        self.written_early += written
        for bridged in acked:
            bridged.flush_metrics()  # after the write: off the acknowledgement's critical path
        self.metrics.in_flight.set(self.waiting_for_kafka())
        if self._closing:
            self._closing = [b for b in self._closing if not b.finished]
        return routine and not left and not self._closing and all(type(b) is InboundLink for b in acked)

    def on_burst_end(self) -> None:
        """The reactor ran out of events after serving hot ones: produce the burst's records, then bring the metrics up to date."""
        self.produce_queued()
        unflushed = self.context.unflushed
        while unflushed:
            unflushed.pop().flush_metrics()
        self.metrics.in_flight.set(self.waiting_for_kafka())

    def produce_queued(self) -> None:
        """Hand the producer the records the links queued in this burst (``InboundLink.produce_queued``)."""
        producing = self.context.producing
        while producing:
            producing.pop().produce_queued()

    def waiting_for_kafka(self) -> int:
        """AMQP deliveries produced to Kafka and not acknowledged yet (the ``bridge_in_flight_deliveries`` gauge)."""
        return sum(b.in_flight for b in self._links.values() if isinstance(b, InboundLink))

    def on_kafka_records(self) -> None:
        """Consumers brought records: let every sender link send what its peer has credit for."""
        self.records_signal.clear()
        outbound = [b for b in self._links.values() if isinstance(b, OutboundLink)]
        for bridged in outbound:
            bridged.send_available()
        written, _left = write_out(b.link for b in outbound if not b.closed)  # the messages leave now
        self.written_early += written

    def drain(self) -> None:
        """Stop taking new work: no new credit to AMQP senders, nothing new sent to AMQP receivers.

        Deliveries in flight still settle (Kafka acks in, peer outcomes out); watch ``in_flight``.
        Links attached from now on start drained.
        """
        self._draining = True
        for bridged in list(self._links.values()):
            bridged.drain()

    def in_flight(self) -> int:
        """Deliveries (and dead-letter writes) not settled yet, over all links."""
        return sum(b.in_flight for b in self._links.values())

    def close(self) -> None:
        """Stop bridging every link: consumers commit what was accepted and leave their groups."""
        for link in list(self._links):
            self.forget(link)

    def shutdown(self, flush_timeout: float = 5.0) -> int:
        """After the reactor ended: flush and close the producer, then every consumer and the admin client.

        Returns how many produced records Kafka never acknowledged (their deliveries stay unsettled,
        so their senders resend them).
        """
        self.produce_queued()  # nothing is left normally: every burst ends before the reactor does
        unflushed = self.producer.flush(flush_timeout)
        self.producer.close(1.0)
        self.close()
        for bridged in self._closing:
            bridged.close(force=True)
        self._closing.clear()
        self.admin.close()
        self.wakeups.close()
        return unflushed
