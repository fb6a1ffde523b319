"""Plain python-qpid-proton clients for tests: what a user's own sender or receiver would do.

They share no code with the project's connectors or bridge, so a test that uses them
checks the project against an independent AMQP peer.
"""

from __future__ import annotations

from collections.abc import Sequence

from proton import Delivery, Message
from proton.handlers import MessagingHandler
from proton.reactor import Container


class _Timeout:
    def __init__(self, owner: _Bounded) -> None:
        self.owner = owner

    def on_timer_task(self, event: object) -> None:
        self.owner.timed_out = True
        self.owner.close_all()


class _Bounded(MessagingHandler):
    def __init__(self, url: str, timeout: float, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.url = url
        self.timeout = timeout
        self.timed_out = False
        self.conn = None
        self.timer = None
        self.error: str | None = None

    def on_start(self, event: object) -> None:
        self.conn = event.container.connect(self.url)  # type: ignore[attr-defined]
        self.timer = event.container.schedule(self.timeout, _Timeout(self))  # type: ignore[attr-defined]

    def close_all(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.conn is not None:
            self.conn.close()

    def on_connection_error(self, event: object) -> None:
        cond = event.connection.remote_condition  # type: ignore[attr-defined]
        self.error = f"{cond.name}: {cond.description}" if cond else "connection closed by peer"
        self.close_all()

    def on_link_error(self, event: object) -> None:
        cond = event.link.remote_condition  # type: ignore[attr-defined]
        self.error = f"{cond.name}: {cond.description}" if cond else "link closed by peer"
        self.close_all()

    def on_transport_error(self, event: object) -> None:
        cond = event.transport.condition  # type: ignore[attr-defined]
        self.error = f"{cond.name}: {cond.description}" if cond else "transport error"
        self.close_all()


class _Sender(_Bounded):
    def __init__(self, url: str, address: str, messages: Sequence[Message], timeout: float) -> None:
        super().__init__(url, timeout)
        self.address = address
        self.messages = messages
        self.sent = 0
        self.outcomes: dict[str, int] = {"accepted": 0, "rejected": 0, "released": 0}

    def on_start(self, event: object) -> None:
        super().on_start(event)
        event.container.create_sender(self.conn, self.address)  # type: ignore[attr-defined]

    def on_sendable(self, event: object) -> None:
        sender = event.sender  # type: ignore[attr-defined]
        while sender.credit and self.sent < len(self.messages):
            sender.send(self.messages[self.sent])
            self.sent += 1

    def _settled(self, kind: str) -> None:
        self.outcomes[kind] += 1
        if sum(self.outcomes.values()) == len(self.messages):
            self.close_all()

    def on_accepted(self, event: object) -> None:
        self._settled("accepted")

    def on_rejected(self, event: object) -> None:
        self._settled("rejected")

    def on_released(self, event: object) -> None:
        self._settled("released")


class _Receiver(_Bounded):
    def __init__(self, url: str, address: str, count: int, timeout: float) -> None:
        super().__init__(url, timeout, prefetch=min(max(count, 10), 1000))
        self.address = address
        self.count = count
        self.received: list[Message] = []

    def on_start(self, event: object) -> None:
        super().on_start(event)
        if self.count == 0:
            return
        event.container.create_receiver(self.conn, self.address)  # type: ignore[attr-defined]

    def on_message(self, event: object) -> None:
        self.received.append(event.message)  # type: ignore[attr-defined]
        if len(self.received) >= self.count:
            event.receiver.close()  # type: ignore[attr-defined]
            self.close_all()


def send(url: str, address: str, messages: Sequence[Message], timeout: float = 30.0) -> dict[str, int]:
    """Send unsettled; return the count of each outcome. Raises if the time ran out first."""
    handler = _Sender(url, address, messages, timeout)
    Container(handler).run()
    if handler.error:
        raise ConnectionError(handler.error)
    if sum(handler.outcomes.values()) < len(messages):
        raise TimeoutError(f"only {handler.outcomes} of {len(messages)} settled within {timeout}s")
    return handler.outcomes


def receive(url: str, address: str, count: int, timeout: float = 30.0) -> list[Message]:
    """Receive and accept up to ``count`` messages; returns what arrived before the deadline."""
    handler = _Receiver(url, address, count, timeout)
    Container(handler).run()
    if handler.error:
        raise ConnectionError(handler.error)
    return handler.received


__all__ = ["Delivery", "Message", "receive", "send"]
