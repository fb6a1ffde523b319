"""The proton handler behind the sink: flow-controlled unsettled sends, outcomes counted."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

from amqp_message_model.brokers import QueueProbe, missing_queue_reason, needs_queue_probe
from amqp_message_model.connection import connect_kwargs
from proton import Delivery
from proton.handlers import MessagingHandler

from pyspark_amqp.conversion import row_to_message
from pyspark_amqp.options import SinkOptions


class _Deadline:
    def __init__(self, handler: RowSender) -> None:
        self.handler = handler

    def on_timer_task(self, event: Any) -> None:
        self.handler.on_deadline()


class RowSender(MessagingHandler):
    """Sends rows as they come, never more than ``max_in_flight`` unsettled; fails on the first refusal.

    A lost connection is not a refusal: proton reconnects with backoff, the messages that were
    unsettled on the lost connection are sent again on new links (at-least-once, as a retried
    task would), and the task fails only when nothing was settled for ``sendTimeout`` seconds,
    naming the last connection error. Refused credentials or TLS fail at once.
    """

    def __init__(self, options: SinkOptions, columns: tuple[str, ...], rows: Iterator[Any]) -> None:
        super().__init__(auto_settle=True)
        self.options = options
        self.columns = columns
        self.rows = iter(rows)
        self.links: dict[str, Any] = {}
        self.unsettled: dict[Delivery, tuple[str, Any]] = {}
        self.resend: collections.deque[tuple[str, Any]] = collections.deque()  # sent on a lost connection
        self.held: tuple[str, Any] | None = None  # a message waiting for its link's credit
        self.exhausted = False
        self.accepted = 0
        self.failure: str | None = None
        self.connection_error: str | None = None
        self.seen_accepted = -1
        self.conn: Any = None
        self.connections = 0
        self.probes: dict[str, QueueProbe] = {}  # RabbitMQ /amq/queue/ targets not verified yet
        self.verified: set[str] = set()

    @property
    def in_flight(self) -> int:
        return len(self.unsettled)

    def on_start(self, event: Any) -> None:
        self.container = event.container
        self.conn = self.container.connect(**connect_kwargs(self.options.connection, reconnect=True))
        self.container.schedule(self.options.send_timeout_s, _Deadline(self))

    def on_connection_opened(self, event: Any) -> None:
        self.connections += 1
        self.connection_error = None
        self._pump()

    def _link(self, address: str) -> Any:
        link = self.links.get(address)
        if link is None:
            # A fresh name per connection: proton names links after the target, and a new link
            # with the name of a closed one on the same (re-opened) session is never attached.
            name = f"amqp-sink-{address}-{self.connections}"
            link = self.links[address] = self.container.create_sender(self.conn, address, name=name)
            if address not in self.verified and needs_queue_probe(self.conn, address):
                self.probes[address] = QueueProbe(self.container, self.conn, address, self._on_probe_verified)
        return link

    def _on_probe_verified(self, address: str) -> None:
        self.probes.pop(address, None)
        self.verified.add(address)
        self._pump()

    def on_session_error(self, event: Any) -> None:
        for address, probe in self.probes.items():
            if event.session == probe.session:
                self._fail(missing_queue_reason(address, event.session.remote_condition))
                return
        cond = event.session.remote_condition
        self._fail(f"the broker ended the session: {cond.name if cond else ''} {cond.description if cond else ''}")

    def _next(self) -> tuple[str, Any] | None:
        if self.held is None:
            if self.resend:
                self.held = self.resend.popleft()
            else:
                try:
                    row = next(self.rows)
                except StopIteration:
                    self.exhausted = True
                    return None
                values = {c: row[c] for c in self.columns}
                message = row_to_message(values, self.options.address)
                self.held = (message.address, message)
        return self.held

    def _pump(self) -> None:
        if self.conn is None or self.connection_error is not None:
            return  # not connected (yet): on_connection_opened resumes
        while self.failure is None and self.in_flight < self.options.max_in_flight:
            held = self._next()
            if held is None:
                break
            address, message = held
            link = self._link(address)
            if not link.credit or address in self.probes:
                return  # on_sendable (or the queue probe) resumes
            self.unsettled[link.send(message)] = held
            self.held = None
        self._maybe_done()

    def on_sendable(self, event: Any) -> None:
        self._pump()

    def on_accepted(self, event: Any) -> None:
        if self.unsettled.pop(event.delivery, None) is not None:
            self.accepted += 1
        self._pump()

    def _refused(self, event: Any, outcome: str) -> None:
        cond = event.delivery.remote.condition
        detail = f"{cond.name}: {cond.description}" if cond else "no reason given"
        self._fail(f"the broker {outcome} a message sent to {event.link.target.address!r}: {detail}")

    def on_rejected(self, event: Any) -> None:
        self._refused(event, "rejected")

    def on_released(self, event: Any) -> None:
        delivery = event.delivery
        if delivery.remote_state == Delivery.MODIFIED and delivery.remote.undeliverable:
            self._refused(event, "could not deliver (modified, undeliverable)")
        else:
            self._refused(event, "released")

    def on_link_error(self, event: Any) -> None:
        cond = event.link.remote_condition
        self._fail(f"the broker closed the link to {event.link.target.address!r}: {cond.name if cond else ''} {cond.description if cond else ''}")

    def on_connection_error(self, event: Any) -> None:
        cond = event.connection.remote_condition
        self._fail(f"the broker closed the connection: {cond.name if cond else ''} {cond.description if cond else ''}")

    def on_transport_error(self, event: Any) -> None:
        cond = event.transport.condition
        urls = ", ".join(e.url for e in self.options.connection.endpoints)
        self.connection_error = f"cannot reach the broker at {urls}: {cond.name if cond else ''} {cond.description if cond else ''}".rstrip()
        if cond is not None and (cond.name == "amqp:unauthorized-access" or "SSL" in (cond.description or "")):
            self._fail(self.connection_error)  # reconnecting cannot fix credentials or certificates

    def on_disconnected(self, event: Any) -> None:
        """The unsettled messages' fate is unknown: send them again, in order, on new links."""
        if self.failure is not None:
            return
        if self.connection_error is None:
            self.connection_error = "connection lost"
        self.resend.extendleft(reversed([*self.unsettled.values(), *([self.held] if self.held else [])]))
        self.held = None
        self.unsettled.clear()
        for link in self.links.values():
            link.close()
        self.links.clear()
        self.probes.clear()  # probed again on the new connection

    def on_deadline(self) -> None:
        if self.failure is not None or (self.exhausted and self.in_flight == 0 and not self.resend):
            return
        if self.accepted == self.seen_accepted:
            waiting = self.in_flight + len(self.resend)
            reason = f"; {self.connection_error}" if self.connection_error else ""
            self._fail(f"no message was settled by the broker within sendTimeout={self.options.send_timeout_s}s ({waiting} waiting){reason}")
            return
        self.seen_accepted = self.accepted
        self.container.schedule(self.options.send_timeout_s, _Deadline(self))

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self._close()

    def _maybe_done(self) -> None:
        if self.exhausted and self.in_flight == 0 and self.held is None and not self.resend:
            self._close()

    def _close(self) -> None:
        for link in self.links.values():
            link.close()
        self.links.clear()
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.container.stop()
