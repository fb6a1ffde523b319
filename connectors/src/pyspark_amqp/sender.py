"""The proton handler behind the sink: flow-controlled unsettled sends, outcomes counted.

Per message the hot path is: take the next row's columns, encode the message once (the
bytes are kept for a resend; :class:`MessageEncoder`), stream them on the link, and later
settle on the broker's outcome. Outcomes are read in ``on_delivery`` itself rather than through proton's
``OutgoingMessageHandler`` layer, and credit in ``on_link_flow``: one dispatch per event
instead of three, which is most of what a message costs here besides the encoding.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

from amqp_message_model.brokers import QueueProbe, missing_queue_reason, needs_queue_probe
from amqp_message_model.connection import connect_kwargs
from amqp_message_model.encoding import data_body, value_body
from proton import Delivery, Message
from proton.handlers import IncomingMessageHandler, MessagingHandler, OutgoingMessageHandler

from pyspark_amqp.conversion import row_to_message
from pyspark_amqp.options import SinkOptions

Encoded = tuple[str, bytes]
"""A message ready to go: its target address and its AMQP encoding."""


_BODY_AND_ADDRESS = ("body", "address")


class MessageEncoder:
    """A sink row -> ``(address, AMQP encoding)``, the same bytes ``row_to_message(...).encode()`` gives.

    Most rows carry a body and at most an address. For those, the header and properties
    sections depend only on the address and are encoded by proton once per address; the
    body section that follows them (a data section for binary, an amqp-value for a string)
    is written per row by ``amqp_message_model.encoding``, byte-identical to proton's. That
    skips building a proton ``Message`` (about 40 us here) for 2-3 us. Rows with any other
    field set go through ``row_to_message``.
    """

    _MAX_PREFIXES = 1024  # bounds the cache when rows carry many distinct addresses

    def __init__(self, default_address: str | None) -> None:
        self.default_address = default_address
        self._prefixes: dict[str, bytes] = {}

    def encode(self, row: Any) -> Encoded:
        body = row.get("body")
        address = row.get("address") or self.default_address
        if isinstance(body, (bytes, str)) and address and all(v is None for k, v in row.items() if k not in _BODY_AND_ADDRESS):
            prefix = self._prefixes.get(address)
            if prefix is None:
                if len(self._prefixes) >= self._MAX_PREFIXES:
                    self._prefixes.clear()
                prefix = self._prefixes[address] = bytes(Message(durable=True, address=address).encode())
            return address, prefix + (value_body(body) if isinstance(body, str) else data_body(body))
        message = row_to_message(row, self.default_address)
        return message.address, bytes(message.encode())


class _Deadline:
    def __init__(self, handler: RowSender) -> None:
        self.handler = handler

    def on_timer_task(self, event: Any) -> None:
        self.handler.on_deadline()


class RowSender(MessagingHandler):
    """Sends rows as they come, never more than ``max_in_flight`` unsettled; fails on the first refusal.

    ``rows`` yields one mapping per row, column name -> value (see ``row_to_message``).
    A lost connection is not a refusal: proton reconnects with backoff, the messages that were
    unsettled on the lost connection are sent again on new links (at-least-once, as a retried
    task would), and the task fails only when nothing was settled for ``sendTimeout`` seconds,
    naming the last connection error. Refused credentials or TLS fail at once.
    """

    def __init__(self, options: SinkOptions, rows: Iterator[Any]) -> None:
        super().__init__(auto_settle=True)
        # Outcomes and credit are handled here directly (on_delivery, on_link_flow).
        self.handlers = [h for h in self.handlers if not isinstance(h, (IncomingMessageHandler, OutgoingMessageHandler))]
        self.options = options
        self.rows = iter(rows)
        self.links: dict[str, Any] = {}
        self.unsettled: dict[Delivery, Encoded] = {}
        self.resend: collections.deque[Encoded] = collections.deque()  # sent on a lost connection
        self.held: Encoded | None = None  # a message waiting for its link's credit
        self.exhausted = False
        self.accepted = 0
        self.failure: str | None = None
        self.connection_error: str | None = None
        self.seen_accepted = -1
        self.conn: Any = None
        self.connections = 0
        self.probes: dict[str, QueueProbe] = {}  # RabbitMQ /amq/queue/ targets not verified yet
        self.verified: set[str] = set()
        self._tag = 0
        self._encoder = MessageEncoder(options.address)

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

    def _next(self) -> Encoded | None:
        if self.held is None:
            if self.resend:
                self.held = self.resend.popleft()
            else:
                row = next(self.rows, None)
                if row is None:
                    self.exhausted = True
                    return None
                self.held = self._encoder.encode(row)
        return self.held

    def _pump(self) -> None:
        if self.conn is None or self.connection_error is not None:
            return  # not connected (yet): on_connection_opened resumes
        limit = self.options.max_in_flight
        unsettled = self.unsettled
        while self.failure is None and len(unsettled) < limit:
            held = self._next()
            if held is None:
                break
            address, encoded = held
            link = self._link(address)
            if not link.credit or address in self.probes:
                return  # on_link_flow (or the queue probe) resumes
            self._tag += 1
            dlv = link.delivery(str(self._tag))
            link.stream(encoded)
            link.advance()
            unsettled[dlv] = held
            self.held = None
        self._maybe_done()

    def on_link_flow(self, event: Any) -> None:
        if event.link.is_sender and event.link.credit:
            self._pump()

    def on_delivery(self, event: Any) -> None:
        dlv = event.delivery
        if not dlv.updated:
            return
        state = dlv.remote_state
        if state == Delivery.ACCEPTED:
            if self.unsettled.pop(dlv, None) is not None:
                self.accepted += 1
            dlv.settle()
            self._pump()
            return
        if state == Delivery.REJECTED:
            self._refused(dlv, "rejected")
        elif state == Delivery.MODIFIED and dlv.remote.undeliverable:
            self._refused(dlv, "could not deliver (modified, undeliverable)")
        elif state in (Delivery.RELEASED, Delivery.MODIFIED):
            self._refused(dlv, "released")
        if dlv.settled:
            dlv.settle()

    def _refused(self, dlv: Delivery, outcome: str) -> None:
        cond = dlv.remote.condition
        detail = f"{cond.name}: {cond.description}" if cond else "no reason given"
        self._fail(f"the broker {outcome} a message sent to {dlv.link.target.address!r}: {detail}")

    def on_link_error(self, event: Any) -> None:
        cond = event.link.remote_condition
        self._fail(
            f"the broker closed the link to {event.link.target.address!r}: {cond.name if cond else ''} {cond.description if cond else ''}"
        )

    def on_connection_error(self, event: Any) -> None:
        cond = event.connection.remote_condition
        self._fail(f"the broker closed the connection: {cond.name if cond else ''} {cond.description if cond else ''}")

    def on_transport_error(self, event: Any) -> None:
        cond = event.transport.condition
        urls = ", ".join(e.url for e in self.options.connection.endpoints)
        self.connection_error = (
            f"cannot reach the broker at {urls}: {cond.name if cond else ''} {cond.description if cond else ''}".rstrip()
        )
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
            self._fail(
                f"no message was settled by the broker within sendTimeout={self.options.send_timeout_s}s ({waiting} waiting){reason}"
            )
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
