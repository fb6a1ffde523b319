"""The AMQP endpoint: shared bridge state (``BridgeCore``) and the small proton handler that routes events to it.

Server mode: peers attach links to the bridge's listener. A sender link with target ``T``
produces to topic ``T`` (or its route); a receiver link with source ``T/group.id/G`` (or
the ``group.id`` link property), with optional partition/offset source filters (``filters``:
this bridge's ``x-opt-bridge.*`` and Strimzi's ``io.strimzi:*``), receives the topic's records.
Each attach is checked against the ``acl`` rules (``access``) before Kafka is touched.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from proton import Condition, Delivery, Link
from proton.handlers import IncomingMessageHandler, MessagingHandler
from proton.reactor import ApplicationEvent, EventInjector

from amqp_kafka_bridge.access import AccessControl, AccessDenied
from amqp_kafka_bridge.filters import FilterError, parse_filters
from amqp_kafka_bridge.kafka_io import ProducerPump, Signal, SourceSpec, TopicAdmin
from amqp_kafka_bridge.links import InboundLink, OutboundLink, settle
from amqp_kafka_bridge.metrics import BridgeMetrics
from amqp_kafka_bridge.settings import BridgeSettings

log = logging.getLogger("bridge.endpoint")


def _contained(method: Callable[..., None]) -> Callable[..., None]:
    """An event-loop boundary: a bug in one event's handling is logged and counted, not allowed to stop the reactor
    (which would take every other link down with it)."""

    @functools.wraps(method)
    def run(self: BridgeHandler, event: Any, *args: Any) -> None:
        try:
            method(self, event, *args)
        except Exception:  # noqa: BLE001 - logged with its stack and counted; the other links keep flowing
            self.core.metrics.kafka_errors.labels("internal").inc()
            log.exception("event handling failed", extra={"event": method.__name__})

    return run


GROUP_SEPARATOR = "/group.id/"


class AddressError(ValueError):
    """A link address or filter the bridge cannot serve; ``condition`` is the AMQP error to detach with."""

    def __init__(self, condition: str, description: str) -> None:
        super().__init__(description)
        self.condition = condition


def parse_source(
    address: str | None, properties: dict[Any, Any] | None, filters: dict[Any, Any] | None
) -> tuple[SourceSpec, dict[Any, Any]]:
    """Receiver-link source -> what to consume, and the filters applied (to echo). Raises ``AddressError``/``FilterError``.

    ``T/group.id/G`` names topic ``T`` and group ``G``; without the suffix the ``group.id``
    link property gives the group. Filters: see ``amqp_kafka_bridge.filters``.
    """
    if not address:
        raise AddressError("amqp:invalid-field", "a source address (the topic) is required")
    topic, sep, group = address.partition(GROUP_SEPARATOR)
    if not sep:
        group = str((properties or {}).get("group.id") or "")
    if not topic or not group:
        raise AddressError(
            "amqp:invalid-field",
            f"no consumer group: use source '{topic or 'topic'}{GROUP_SEPARATOR}<group>' or a group.id link property",
        )
    applied = parse_filters(filters)
    return SourceSpec(topic, group, applied.partition, applied.offset), applied.echo


class BridgeCore:
    """State shared by every link of one bridge: settings, the producer, metrics, and the reactor wake-ups.

    All methods run on the reactor thread except the two signals, which Kafka threads set.
    """

    def __init__(self, settings: BridgeSettings, metrics: BridgeMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.injector = EventInjector()
        self.acks_signal = Signal(lambda: self.injector.trigger(ApplicationEvent("kafka_acks")))
        self.records_signal = Signal(lambda: self.injector.trigger(ApplicationEvent("kafka_records")))
        self.checks_signal = Signal(lambda: self.injector.trigger(ApplicationEvent("topic_checks")))
        producer_config = {**settings.producer_config(), **metrics.producer_stats_config(settings.kafka_stats_interval_s)}
        self.producer = ProducerPump(producer_config, self.acks_signal)
        self.admin = TopicAdmin(settings.admin_config(), settings.topic_partitions)
        self.access = AccessControl(settings, metrics)
        self.links: set[InboundLink | OutboundLink] = set()
        self._checks: list[tuple[InboundLink | OutboundLink, Future[str | None]]] = []
        self.draining = False

    def start(self) -> None:
        self.producer.start()

    def attach_inbound(self, link: Link, topic: str, create: bool | None = None) -> None:
        self._attach(InboundLink(self, link, topic), link, create)

    def attach_outbound(self, link: Link, spec: SourceSpec, create: bool | None = None) -> None:
        self._attach(OutboundLink(self, link, spec), link, create)

    def _attach(self, bridged: InboundLink | OutboundLink, link: Link, create: bool | None) -> None:
        """``create``: whether a missing topic is created (default ``auto_create_topics``)."""
        link.bridged = bridged
        self.links.add(bridged)
        self.metrics.links.labels(bridged.role).inc()
        create = self.settings.auto_create_topics if create is None else create
        future = self.admin.check(bridged.topic, create, timeout=min(10.0, self.settings.delivery_timeout_s))
        self._checks.append((bridged, future))
        future.add_done_callback(lambda _f: self.checks_signal.set())

    def on_topic_checks(self) -> None:
        self.checks_signal.clear()
        waiting = []
        for bridged, future in self._checks:
            if not future.done():
                waiting.append((bridged, future))
                continue
            if bridged.closed:
                continue
            error = future.result()
            if error is None:
                bridged.start()
            else:
                condition, _, description = error.partition("|")
                self.detach(bridged, condition, description)
        self._checks = waiting

    def detach(self, bridged: InboundLink | OutboundLink, condition: str, description: str) -> None:
        log.warning(
            "link detached", extra={"link": bridged.name, "topic": bridged.topic, "condition": condition, "reason": description}
        )
        bridged.link.condition = Condition(condition, description)
        bridged.link.close()
        self.link_closed(bridged.link)

    def link_closed(self, link: Link) -> None:
        bridged = getattr(link, "bridged", None)
        if bridged is not None:
            # Break the link <-> bridged-state cycle: proton keeps the attribute alive through the
            # C link, so the garbage collector never frees a closed connection's objects otherwise.
            link.bridged = None
        if bridged is not None and bridged in self.links:
            self.links.discard(bridged)
            self.metrics.links.labels(bridged.role).dec()
            bridged.on_closed()

    def on_kafka_acks(self) -> None:
        self.acks_signal.clear()
        acks = self.producer.acks
        while acks:
            ack = acks.popleft()
            ack.token.on_ack(ack)

    def on_kafka_records(self) -> None:
        self.records_signal.clear()
        for bridged in list(self.links):
            if isinstance(bridged, OutboundLink):
                bridged.send_available()

    def in_flight(self) -> int:
        return sum(b.in_flight for b in self.links)


class BridgeHandler(MessagingHandler):
    """Routes proton events to ``BridgeCore``; holds no bridging logic itself.

    ``on_link_attach(core, link)`` decides what a peer-initiated link means (server mode);
    the forwarder creates its links itself and passes None.
    """

    def __init__(
        self, core: BridgeCore, on_link_attach: Callable[[BridgeCore, Link], None] | None, on_start: Callable[[Any], None]
    ) -> None:
        super().__init__(prefetch=0, auto_accept=False, auto_settle=True, peer_close_is_error=False)
        # Incoming transfers are read raw in on_delivery (size check before decoding).
        self.handlers = [h for h in self.handlers if not isinstance(h, IncomingMessageHandler)]
        self.core = core
        self._on_link_attach = on_link_attach
        self._on_start = on_start

    def on_start(self, event: Any) -> None:
        event.container.selectable(self.core.injector)
        self._on_start(event)

    @_contained
    def on_link_opening(self, event: Any) -> None:
        if self._on_link_attach is not None:
            self._on_link_attach(self.core, event.link)

    def on_link_local_open(self, event: Any) -> None:
        refusal = getattr(event.link, "refusal", None)
        if refusal is not None:
            event.link.condition = refusal
            event.link.close()

    @_contained
    def on_delivery(self, event: Any) -> None:
        dlv = event.delivery
        link = dlv.link
        if not link.is_receiver:
            return
        if dlv.aborted:
            dlv.settle()
            return
        if dlv.readable and not dlv.partial:
            data = link.recv(dlv.pending)
            link.advance()
            bridged = getattr(link, "bridged", None)
            if isinstance(bridged, InboundLink) and not bridged.closed:
                bridged.on_transfer(dlv, data)
            else:
                settle(dlv, Delivery.RELEASED)

    @_contained
    def on_sendable(self, event: Any) -> None:
        bridged = getattr(event.link, "bridged", None)
        if isinstance(bridged, OutboundLink):
            bridged.send_available()

    def on_accepted(self, event: Any) -> None:
        self._outcome(event, "accepted")

    def on_rejected(self, event: Any) -> None:
        self._outcome(event, "rejected")

    def on_released(self, event: Any) -> None:
        self._outcome(event, "modified" if event.delivery.remote_state == event.delivery.MODIFIED else "released")

    @_contained
    def _outcome(self, event: Any, outcome: str) -> None:
        bridged = getattr(event.link, "bridged", None)
        if isinstance(bridged, OutboundLink):
            bridged.on_outcome(event.delivery, outcome)

    def on_link_closing(self, event: Any) -> None:
        self.core.link_closed(event.link)

    def on_link_closed(self, event: Any) -> None:
        self.core.link_closed(event.link)

    def on_link_error(self, event: Any) -> None:
        self.core.link_closed(event.link)

    def on_connection_opened(self, event: Any) -> None:
        self.core.metrics.connection_opened(event.connection)
        forwarder = getattr(event.connection, "forwarder", None)
        if forwarder is not None:
            forwarder.on_opened()

    def on_transport_error(self, event: Any) -> None:
        """A connection failed (refused credentials, TLS, a vanished peer): say why, once per failure."""
        cond = event.transport.condition
        forwarder = getattr(event.connection, "forwarder", None) if event.connection is not None else None
        if forwarder is not None:
            forwarder.on_failed(f"{cond.name}: {cond.description}" if cond else "connection failed")
        if cond is not None and cond.name == "amqp:unauthorized-access" and forwarder is None:
            self.core.metrics.auth_failures.inc()  # a client refused at SASL (Cyrus said no)
            peer = getattr(event.connection, "url", None) if event.connection is not None else None
            log.warning("connection refused at SASL", extra={"peer": str(peer), "reason": cond.description})
        super().on_transport_error(event)  # proton's: logs it, and gives up on refused credentials

    def on_transport_closed(self, event: Any) -> None:
        """Every way a connection ends (close, error, a peer that vanished) ends here: count it gone once."""
        if event.connection is not None:
            self.core.metrics.connection_ended(event.connection)

    def on_disconnected(self, event: Any) -> None:
        conn = event.connection
        if conn is None:
            return
        forwarder = getattr(conn, "forwarder", None)
        if forwarder is not None:
            forwarder.on_lost()
        link = conn.link_head(0)
        while link is not None:
            self.core.link_closed(link)
            link = link.next(0)

    def on_connection_closed(self, event: Any) -> None:
        self.core.metrics.connection_ended(event.connection)
        self.on_disconnected(event)

    @_contained
    def on_kafka_acks(self, event: Any) -> None:
        self.core.on_kafka_acks()

    @_contained
    def on_kafka_records(self, event: Any) -> None:
        self.core.on_kafka_records()

    @_contained
    def on_topic_checks(self, event: Any) -> None:
        self.core.on_topic_checks()


def _filters_of(terminus: Any) -> dict[Any, Any] | None:
    data = terminus.filter
    if data is None:
        return None
    data.rewind()
    if not data.next():
        return None
    value = data.get_object()
    return value if isinstance(value, dict) else None


def _echo_filters(terminus: Any, applied: dict[Any, Any]) -> None:
    """The attach answers with only the filters the bridge applies (the copied source had every one asked for)."""
    data = terminus.filter
    data.clear()
    if applied:
        data.put_dict(applied)


def server_attach(core: BridgeCore, link: Link) -> None:
    """Server mode: what a peer's link asks for, from its address (and filters for receivers)."""
    try:
        if link.is_receiver:
            address = link.remote_target.address
            if not address:
                raise AddressError("amqp:invalid-field", "a target address (the topic) is required")
            link.target.address = address
            topic = core.settings.topic_for(address)
            core.access.check_produce(link, topic)
            core.attach_inbound(link, topic, core.access.may_create(link, topic))
        else:
            source = link.remote_source
            link.source.copy(source)
            spec, applied = parse_source(source.address, link.remote_properties, _filters_of(source))
            _echo_filters(link.source, applied)
            core.access.check_consume(link, spec.topic, spec.group)
            core.attach_outbound(link, spec, core.access.may_create(link, spec.topic))
    except (AddressError, FilterError, AccessDenied) as exc:
        log.info("link refused", extra={"link": link.name, "condition": exc.condition, "reason": str(exc)})
        link.refusal = Condition(exc.condition, str(exc))  # closed once proton has opened it (on_link_local_open)
