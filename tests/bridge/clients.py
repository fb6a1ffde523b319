"""Plain proton clients for the bridge tests: what a user's own AMQP code would do, with every outcome recorded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from proton import Condition, Delivery, Message, symbol
from proton.handlers import MessagingHandler
from proton.reactor import AtMostOnce, Container, Filter, LinkOption


@dataclass
class SendResult:
    outcomes: list[str] = field(default_factory=list)  # per message, in send order: accepted/rejected/released/modified
    conditions: list[str | None] = field(default_factory=list)
    link_error: str | None = None
    connection_error: str | None = None

    def count(self, outcome: str) -> int:
        return self.outcomes.count(outcome)


class _Client(MessagingHandler):
    def __init__(
        self, url: str, timeout: float, user: str | None, password: str | None, ssl_domain: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.url, self.timeout, self.user, self.password = url, timeout, user, password
        self.ssl_domain = ssl_domain
        self.conn: Any = None
        self.container: Any = None
        self.timer: Any = None
        self.timed_out = False

    def connect(self, event: Any) -> None:
        kwargs: dict[str, Any] = {"reconnect": False}
        if self.ssl_domain is not None:
            kwargs["ssl_domain"] = self.ssl_domain
        if self.user is not None:
            kwargs.update(user=self.user, password=self.password, allowed_mechs="PLAIN", allow_insecure_mechs=True)
        self.container = event.container
        self.conn = event.container.connect(self.url, **kwargs)
        client = self

        class Timeout:
            def on_timer_task(self, _e: Any) -> None:
                client.timed_out = True
                client.finish()

        self.timer = event.container.schedule(self.timeout, Timeout())

    def finish(self, stop: bool = False) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.conn is not None:
            self.conn.close()
        if stop:  # after a transport error there is no close handshake to wait for (and a cancelled timer would hold the loop)
            self.container.stop()

    def _cond(self, cond: Condition | None, default: str) -> str:
        return f"{cond.name}: {cond.description}" if cond else default

    def on_link_error(self, event: Any) -> None:
        self.result_error("link", self._cond(event.link.remote_condition, "link closed"))
        self.finish()

    def on_connection_error(self, event: Any) -> None:
        self.result_error("connection", self._cond(event.connection.remote_condition, "connection closed"))
        self.finish()

    def on_transport_error(self, event: Any) -> None:
        self.result_error("connection", self._cond(event.transport.condition, "transport error"))
        self.finish(stop=True)

    def result_error(self, kind: str, text: str) -> None:
        raise NotImplementedError


class _Sender(_Client):
    def __init__(
        self, url: str, address: str, messages: Sequence[Message], timeout: float, presettled: bool,
        on_settled: Callable[[int], None] | None = None, **kw: Any,
    ) -> None:  # fmt: skip
        super().__init__(url, timeout, **kw)
        self.on_settled = on_settled
        self.address, self.messages, self.presettled = address, messages, presettled
        self.result = SendResult(outcomes=[""] * len(messages), conditions=[None] * len(messages))
        self.sent = 0
        self.settled = 0
        self.index: dict[bytes, int] = {}

    def on_start(self, event: Any) -> None:
        self.connect(event)
        opts = [AtMostOnce()] if self.presettled else []
        event.container.create_sender(self.conn, self.address, options=opts)

    def on_sendable(self, event: Any) -> None:
        sender = event.sender
        while sender.credit and self.sent < len(self.messages):
            dlv = sender.send(self.messages[self.sent])
            self.index[dlv.tag] = self.sent
            self.sent += 1
            if self.presettled:
                self.result.outcomes[self.sent - 1] = "presettled"
        if self.presettled and self.sent == len(self.messages):
            self.finish()

    def _outcome(self, event: Any, outcome: str) -> None:
        i = self.index.pop(event.delivery.tag)
        self.result.outcomes[i] = outcome
        cond = event.delivery.remote.condition
        self.result.conditions[i] = f"{cond.name}: {cond.description}" if cond else None
        self.settled += 1
        if self.on_settled is not None:
            self.on_settled(self.settled)
        if self.settled == len(self.messages):
            self.finish()

    def on_accepted(self, event: Any) -> None:
        self._outcome(event, "accepted")

    def on_rejected(self, event: Any) -> None:
        self._outcome(event, "rejected")

    def on_released(self, event: Any) -> None:
        self._outcome(event, "modified" if event.delivery.remote_state == Delivery.MODIFIED else "released")

    def result_error(self, kind: str, text: str) -> None:
        setattr(self.result, f"{kind}_error", text)


def send(
    url: str, address: str, messages: Sequence[Message], timeout: float = 30.0, presettled: bool = False,
    user: str | None = None, password: str | None = None, on_settled: Callable[[int], None] | None = None,
    ssl_domain: Any = None,
) -> SendResult:  # fmt: skip
    """Send ``messages`` and record each one's outcome (pre-settled: none); ``on_settled(n)`` after each outcome."""
    handler = _Sender(
        url, address, messages, timeout, presettled, on_settled, user=user, password=password, ssl_domain=ssl_domain
    )
    Container(handler).run()
    return handler.result


@dataclass
class ReceiveResult:
    messages: list[Message] = field(default_factory=list)
    link_error: str | None = None
    connection_error: str | None = None


class _Props(LinkOption):
    def __init__(self, properties: dict[str, Any]) -> None:
        self.properties = properties

    def apply(self, link: Any) -> None:
        link.properties = {symbol(k): v for k, v in self.properties.items()}


class _Receiver(_Client):
    def __init__(
        self, url: str, address: str, count: int, timeout: float, decide: Callable[[Message], str],
        filters: dict[str, Any] | None, properties: dict[str, Any] | None, credit: int, **kw: Any,
    ) -> None:  # fmt: skip
        # Credit by hand: proton's FlowController with a small prefetch stalls (it tops up before advance).
        super().__init__(url, timeout, prefetch=0, auto_accept=False, **kw)
        self.credit = credit
        self.address, self.count, self.decide = address, count, decide
        self.filters, self.properties = filters, properties
        self.result = ReceiveResult()

    def on_start(self, event: Any) -> None:
        self.connect(event)
        opts: list[Any] = []
        if self.filters:
            opts.append(Filter({symbol(k): v for k, v in self.filters.items()}))
        if self.properties:
            opts.append(_Props(self.properties))
        receiver = event.container.create_receiver(self.conn, self.address, options=opts)
        receiver.flow(self.credit)

    def on_message(self, event: Any) -> None:
        decision = self.decide(event.message)
        if decision == "accept":
            self.result.messages.append(event.message)
            self.accept(event.delivery)
        elif decision == "reject":
            self.reject(event.delivery)
        else:
            self.release(event.delivery, delivered=decision == "modify")
        if len(self.result.messages) >= self.count:
            event.receiver.close()
            self.finish()
        else:
            event.receiver.flow(1)

    def result_error(self, kind: str, text: str) -> None:
        setattr(self.result, f"{kind}_error", text)


def receive(
    url: str, address: str, count: int, timeout: float = 30.0, decide: Callable[[Message], str] = lambda m: "accept",
    filters: dict[str, Any] | None = None, properties: dict[str, Any] | None = None, credit: int = 100,
    user: str | None = None, password: str | None = None,
) -> ReceiveResult:  # fmt: skip
    """Receive until ``count`` messages were accepted (``decide`` says accept/reject/release/modify per message) or the deadline."""
    handler = _Receiver(url, address, count, timeout, decide, filters, properties, credit, user=user, password=password)
    Container(handler).run()
    return handler.result
