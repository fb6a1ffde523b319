"""The proton handler behind the sink: flow-controlled unsettled sends, outcomes counted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from proton import Delivery
from proton.handlers import MessagingHandler

from connectors.amqp.connection import connect_kwargs
from connectors.amqp.conversion import row_to_message
from connectors.amqp.options import SinkOptions


class _Deadline:
    def __init__(self, handler: RowSender) -> None:
        self.handler = handler

    def on_timer_task(self, event: Any) -> None:
        self.handler.on_deadline()


class RowSender(MessagingHandler):
    """Sends rows as they come, never more than ``max_in_flight`` unsettled; fails on the first refusal."""

    def __init__(self, options: SinkOptions, columns: tuple[str, ...], rows: Iterator[Any]) -> None:
        super().__init__(auto_settle=True)
        self.options = options
        self.columns = columns
        self.rows = iter(rows)
        self.links: dict[str, Any] = {}
        self.held: tuple[str, Any] | None = None  # a message waiting for its link's credit
        self.exhausted = False
        self.in_flight = 0
        self.accepted = 0
        self.failure: str | None = None
        self.progress = 0
        self.seen_progress = -1
        self.conn: Any = None

    def on_start(self, event: Any) -> None:
        self.container = event.container
        self.conn = self.container.connect(**connect_kwargs(self.options.connection, reconnect=False))
        self.container.schedule(self.options.send_timeout_s, _Deadline(self))
        self._pump()

    def _link(self, address: str) -> Any:
        link = self.links.get(address)
        if link is None:
            link = self.links[address] = self.container.create_sender(self.conn, address)
        return link

    def _pump(self) -> None:
        while self.failure is None and self.in_flight < self.options.max_in_flight:
            if self.held is None:
                try:
                    row = next(self.rows)
                except StopIteration:
                    self.exhausted = True
                    break
                values = {c: row[c] for c in self.columns}
                message = row_to_message(values, self.options.address)
                self.held = (message.address, message)
            address, message = self.held
            link = self._link(address)
            if not link.credit:
                return  # on_sendable resumes
            link.send(message)
            self.held = None
            self.in_flight += 1
        self._maybe_done()

    def on_sendable(self, event: Any) -> None:
        self._pump()

    def on_accepted(self, event: Any) -> None:
        self.in_flight -= 1
        self.accepted += 1
        self.progress += 1
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
        self._fail(f"cannot reach the broker at {urls}: {cond.name if cond else ''} {cond.description if cond else ''}")

    def on_deadline(self) -> None:
        if self.failure is not None or (self.exhausted and self.in_flight == 0):
            return
        if self.progress == self.seen_progress:
            self._fail(f"no message was settled by the broker within sendTimeout={self.options.send_timeout_s}s ({self.in_flight} waiting)")
            return
        self.seen_progress = self.progress
        self.container.schedule(self.options.send_timeout_s, _Deadline(self))

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self._close()

    def _maybe_done(self) -> None:
        if self.exhausted and self.in_flight == 0 and self.held is None:
            self._close()

    def _close(self) -> None:
        for link in self.links.values():
            link.close()
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.container.stop()
