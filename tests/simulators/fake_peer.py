"""A minimal in-process AMQP 1.0 peer for broker-free publisher/receiver tests.

Runs its own proton container in a thread. Incoming messages are settled by
``policy(index, message) -> "accept" | "release" | "reject"``; messages queued
with :meth:`offer` are sent to any receiver that attaches. Stop with
:meth:`close` (thread-safe: the peer polls a flag on a timer).
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Callable

from proton import Event, Message
from proton.handlers import MessagingHandler
from proton.reactor import Container


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakePeer(MessagingHandler):
    def __init__(self, policy: Callable[[int, Message], str] = lambda i, m: "accept") -> None:
        super().__init__(prefetch=50, auto_accept=False)
        self.port = free_port()
        self.url = f"amqp://127.0.0.1:{self.port}"
        self.policy = policy
        self.received: list[Message] = []
        self.accepted: list[Message] = []
        self.outbox: deque[Message] = deque()
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._acceptor = None
        self._senders: list = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=Container(self).run, daemon=True)

    def start(self) -> FakePeer:
        self._thread.start()
        assert self.ready.wait(10), "fake peer did not start listening"
        return self

    def offer(self, messages: list[Message]) -> None:
        with self._lock:
            self.outbox.extend(messages)

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "fake peer did not stop"

    def on_start(self, event: Event) -> None:
        self._acceptor = event.container.listen(f"127.0.0.1:{self.port}")
        self.ready.set()
        event.container.schedule(0.02, self)

    def on_timer_task(self, event: Event) -> None:
        if self._stop.is_set():
            self._acceptor.close()
            for link in self._senders:
                link.connection.close()
            self._senders.clear()
            event.container.stop()
            return
        for link in self._senders:
            self._flush(link)
        event.container.schedule(0.02, self)

    def on_link_opening(self, event: Event) -> None:
        if event.link.is_sender:
            event.link.source.copy(event.link.remote_source)
            self._senders.append(event.link)
        else:
            event.link.target.copy(event.link.remote_target)

    def on_sendable(self, event: Event) -> None:
        self._flush(event.link)

    def _flush(self, link) -> None:
        with self._lock:
            while link.credit and self.outbox:
                link.send(self.outbox.popleft())

    def on_message(self, event: Event) -> None:
        index = len(self.received)
        self.received.append(event.message)
        verdict = self.policy(index, event.message)
        if verdict == "accept":
            self.accepted.append(event.message)
            self.accept(event.delivery)
        elif verdict == "release":
            self.release(event.delivery, delivered=False)
        else:
            self.reject(event.delivery)
