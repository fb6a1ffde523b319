"""The AMQP endpoint: the proton handler that routes events to the core, and server mode's attach rules.

Server mode: peers attach links to the bridge's listener. A sender link with target ``T``
produces to topic ``T`` (or its route); a receiver link with source ``T/group.id/G`` (or
the ``group.id`` link property), with optional partition/offset source filters (``filters``:
this bridge's ``x-opt-bridge.*`` and Strimzi's ``io.strimzi:*``), receives the topic's records.
Each attach is checked against the ``acl`` rules (``access``) before Kafka is touched. Forwarder mode
(``amqp_kafka_bridge.forwarder``) opens its links itself; both are a :class:`Front` to the handler.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from proton import Condition, Connection, Delivery, Link
from proton.handlers import IncomingMessageHandler, MessagingHandler
from proton.reactor import ApplicationEvent, Container

from amqp_kafka_bridge.access import AccessControl
from amqp_kafka_bridge.auth import listen
from amqp_kafka_bridge.core import BridgeCore
from amqp_kafka_bridge.errors import INVALID_FIELD, AmqpConditionError
from amqp_kafka_bridge.filters import parse_filters
from amqp_kafka_bridge.kafka_io import SourceSpec
from amqp_kafka_bridge.links import settle
from amqp_kafka_bridge.sasl import CyrusConfig, cyrus_config
from amqp_kafka_bridge.settings import BridgeSettings

log = logging.getLogger("bridge.endpoint")

DRAIN = "bridge_drain"  # the injected event that starts a graceful drain (BridgeHandler.on_bridge_drain)


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


class AddressError(AmqpConditionError):
    """A link address or filter the bridge cannot serve (an :class:`AmqpConditionError` to refuse the link with)."""


def parse_source(
    address: str | None, properties: dict[Any, Any] | None, filters: dict[Any, Any] | None
) -> tuple[SourceSpec, dict[Any, Any]]:
    """Receiver-link source -> what to consume, and the filters applied (to echo). Raises ``AmqpConditionError``.

    ``T/group.id/G`` names topic ``T`` and group ``G``; without the suffix the ``group.id``
    link property gives the group. Filters: see ``amqp_kafka_bridge.filters``.
    """
    if not address:
        raise AddressError(INVALID_FIELD, "a source address (the topic) is required")
    topic, sep, group = address.partition(GROUP_SEPARATOR)
    if not sep:
        group = str((properties or {}).get("group.id") or "")
    if not topic or not group:
        raise AddressError(
            INVALID_FIELD,
            f"no consumer group: use source '{topic or 'topic'}{GROUP_SEPARATOR}<group>' or a group.id link property",
        )
    applied = parse_filters(filters)
    return SourceSpec(topic, group, applied.partition, applied.offset), applied.echo


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


def server_attach(core: BridgeCore, link: Link, access: AccessControl) -> None:
    """Server mode: what a peer's link asks for, from its address (and filters for receivers), if ``access`` allows it."""
    try:
        if link.is_receiver:
            address = link.remote_target.address
            if not address:
                raise AddressError(INVALID_FIELD, "a target address (the topic) is required")
            link.target.address = address
            topic = core.settings.topic_for(address)
            access.check_produce(link, topic)
            core.attach_inbound(link, topic, access.may_create(link, topic))
        else:
            source = link.remote_source
            link.source.copy(source)
            spec, applied = parse_source(source.address, link.remote_properties, _filters_of(source))
            _echo_filters(link.source, applied)
            access.check_consume(link, spec.topic, spec.group)
            core.attach_outbound(link, spec, access.may_create(link, spec.topic))
    except AmqpConditionError as exc:
        log.info("link refused", extra={"link": link.name, "condition": exc.condition, "reason": exc.description})
        link.refusal = exc.to_condition()  # closed once proton has opened it (on_link_local_open)


class Front(Protocol):
    """Where the bridge's AMQP connections and links come from: its listener (server mode) or its
    broker connection (forwarder mode). The handler tells it about connections and peer-opened links."""

    @property
    def ready(self) -> bool:
        """Serving (for ``/readyz``): a forwarder is not without its broker connection."""
        ...

    def start(self, container: Container) -> None:
        """Reactor thread, once: open the listener or connect."""

    def stop_accepting(self) -> None:
        """Reactor thread, when draining: no new connections."""

    def on_link_opening(self, link: Link) -> None:
        """A peer opened ``link``: attach it to the core, or mark it refused (``link.refusal``)."""

    def on_connection_opened(self, connection: Connection) -> None: ...

    def on_connection_failed(self, connection: Connection, reason: str) -> None: ...

    def on_connection_lost(self, connection: Connection) -> None: ...


class ServerFront:
    """Server mode: the bridge listens (``amqp_kafka_bridge.auth.listen``, SASL through Cyrus) and peers attach
    links by address, as the ``acl`` rules allow."""

    def __init__(self, core: BridgeCore, settings: BridgeSettings) -> None:
        self.core = core
        self.settings = settings
        self.access = AccessControl(settings, core.metrics)
        self._acceptor: Any = None
        self._cyrus: CyrusConfig | None = None

    @property
    def ready(self) -> bool:
        return self._acceptor is not None

    def start(self, container: Container) -> None:
        s = self.settings
        self._cyrus = cyrus_config(s.sasl_mechanisms, s.sasl_db_file, s.sasl_config_dir, s.sasl_config_name)
        self._acceptor = listen(container, s, self._cyrus)

    def stop_accepting(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
        if self._cyrus is not None:
            self._cyrus.close()

    def on_link_opening(self, link: Link) -> None:
        server_attach(self.core, link, self.access)

    def on_connection_opened(self, connection: Connection) -> None:
        pass

    def on_connection_failed(self, connection: Connection, reason: str) -> None:
        """A peer that failed TLS or went away: proton's handler logs it. One Cyrus refused is counted and logged."""
        if reason.startswith("amqp:unauthorized-access"):
            self.core.metrics.auth_failures.inc()
            log.warning("connection refused at SASL", extra={"peer": str(getattr(connection, "url", "")), "reason": reason})

    def on_connection_lost(self, connection: Connection) -> None:
        pass


class BridgeHandler(MessagingHandler):
    """Routes proton events to the core, the links and the front; holds no bridging logic itself.

    Bridged links' delivery and flow events never reach it (``amqp_kafka_bridge.hot_path``
    serves them), and the Kafka threads' wake-ups call the core directly (``hot_path.Wakeups``);
    the drain request comes back as an injected event to ``on_bridge_drain`` (as in proton's
    ``db_recv.py``, see :meth:`request_drain`).
    """

    def __init__(self, core: BridgeCore, front: Front, drain_timeout_s: float) -> None:
        super().__init__(prefetch=0, auto_accept=False, auto_settle=True, peer_close_is_error=False)
        # Incoming transfers are read raw in on_delivery (size check before decoding).
        self.handlers = [h for h in self.handlers if not isinstance(h, IncomingMessageHandler)]
        self.core = core
        self.front = front
        self.drain_timeout_s = drain_timeout_s
        self.started = threading.Event()  # set once the front is started (or failed to start)
        self._container: Container | None = None  # injected events carry none: kept from on_start

    def request_drain(self) -> None:
        """Any thread: start a graceful drain on the reactor thread; the reactor stops when it is done."""
        self.core.injector.trigger(ApplicationEvent(DRAIN))

    def on_start(self, event: Any) -> None:
        self._container = event.container
        try:
            event.container.selectable(self.core.injector)
            event.container.selectable(self.core.wakeups)
            self.front.start(event.container)
        finally:
            self.started.set()

    def on_bridge_drain(self, event: Any) -> None:
        """No new connections, credit or sends; close the links once nothing is in flight (or at the deadline), then stop."""
        self.front.stop_accepting()
        self.core.drain()
        container = self._container
        assert container is not None, "the injector runs only inside the started container"
        container.schedule(0, _DrainWatch(self.core, container, time.monotonic() + self.drain_timeout_s))

    @_contained
    def on_link_opening(self, event: Any) -> None:
        self.front.on_link_opening(event.link)

    def on_link_local_open(self, event: Any) -> None:
        refusal: Condition | None = getattr(event.link, "refusal", None)
        if refusal is not None:
            event.link.condition = refusal
            event.link.close()

    def on_delivery(self, event: Any) -> None:
        """A transfer on a receiving link that is not bridged (refused, or no longer bridged): released.

        Bridged links never get here: their delivery and flow events are served by the hot path
        (``amqp_kafka_bridge.hot_path``); outcomes on links no longer bridged are settled by proton.
        """
        dlv = event.delivery
        if not dlv.link.is_receiver:
            return
        if dlv.aborted:
            dlv.settle()
        elif dlv.readable and not dlv.partial:
            dlv.link.recv(dlv.pending)
            dlv.link.advance()
            settle(dlv, Delivery.RELEASED)

    def on_link_local_close(self, event: Any) -> None:
        """The bridge closed the link (a link detaching itself, or a refusal): the core stops bridging it."""
        self.core.forget(event.link)

    def on_link_closing(self, event: Any) -> None:
        self.core.forget(event.link)

    def on_link_closed(self, event: Any) -> None:
        self.core.forget(event.link)

    def on_link_error(self, event: Any) -> None:
        self.core.forget(event.link)

    def on_connection_opened(self, event: Any) -> None:
        self.core.metrics.connection_opened(event.connection)
        self.front.on_connection_opened(event.connection)

    def on_transport_error(self, event: Any) -> None:
        """A connection failed (refused credentials, TLS, a vanished peer): say why, once per failure."""
        cond = event.transport.condition
        if event.connection is not None:
            self.front.on_connection_failed(event.connection, f"{cond.name}: {cond.description}" if cond else "connection failed")
        super().on_transport_error(event)  # proton's: logs it, and gives up on refused credentials

    def on_transport_closed(self, event: Any) -> None:
        """Every way a connection ends (close, error, a peer that vanished) ends here: count it gone once."""
        if event.connection is not None:
            self.core.metrics.connection_ended(event.connection)

    def on_disconnected(self, event: Any) -> None:
        conn = event.connection
        if conn is None:
            return
        self.front.on_connection_lost(conn)
        link = conn.link_head(0)
        while link is not None:
            self.core.forget(link)
            link = link.next(0)

    def on_connection_closed(self, event: Any) -> None:
        self.core.metrics.connection_ended(event.connection)
        self.on_disconnected(event)


class _DrainWatch:
    """Timer task while draining: polls the core until nothing is in flight or the deadline passed, then
    closes the links (consumers commit what was accepted) and stops the reactor."""

    def __init__(self, core: BridgeCore, container: Container, deadline: float) -> None:
        self.core = core
        self.container = container
        self.deadline = deadline

    def on_timer_task(self, _event: Any) -> None:
        core = self.core
        if core.in_flight() and time.monotonic() < self.deadline:
            self.container.schedule(0.02, self)
            return
        if core.in_flight():
            log.warning("drain timed out; unsettled deliveries left to the peers", extra={"in_flight": core.in_flight()})
        core.close()
        self.container.stop()
