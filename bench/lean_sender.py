"""A sender that costs little per message, so that the receiving side, not the sender, sets the rate.

The benchmark's ordinary sender (``bench.bench_bridge.Sender``) builds and encodes a proton
``Message`` per message and sees every outcome through proton's Python event dispatch: about
85 us of CPU per message here, about what the raw receive loop spends receiving. With it,
the raw loop, this bridge and the Strimzi bridge all run at the sender's pace and their
ratios sit near 1.0x whatever they cost. This sender encodes its message once and sends and
settles through proton-c's calls (the bridge's own ``hot_path``: a delivery per message, no
``Event`` objects), at about 7 us per message, so the receiver's capacity shows.

Every message is still a separate unsettled delivery, and the run ends only when the peer
settled each one: for a bridge, once Kafka acknowledged it.
"""

from __future__ import annotations

import time
from typing import Any

from amqp_kafka_bridge import hot_path
from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container


class LeanSender(MessagingHandler):
    """Sends ``count`` copies of one pre-encoded message as fast as the peer gives credit; times first send to last settle."""

    def __init__(self, url: str, address: str, count: int, size: int, routes: hot_path.HotRoutes) -> None:
        super().__init__(prefetch=0, auto_settle=False)
        self.url, self.address, self.count, self.routes = url, address, count, routes
        self.encoded = bytes(Message(body=b"x" * size, inferred=True).encode())
        self.sent = self.settled = 0
        self.t0 = self.t1 = 0.0
        self.error = ""
        self._link: Any = None
        self._sending: hot_path.Sending | None = None

    def on_start(self, event: Any) -> None:
        conn = event.container.connect(self.url, reconnect=False)
        self._link = event.container.create_sender(conn, self.address)
        self._sending = hot_path.Sending(self._link)
        self.routes.add(self._link, self)  # its flow and delivery events come to on_raw_flow / on_raw_delivery

    def on_raw_flow(self) -> None:
        assert self._sending is not None
        n = min(hot_path.link_credit(self._sending.link), self.count - self.sent)
        if n > 0 and not self.t0:
            self.t0 = time.perf_counter()
        send, encoded = self._sending.send, self.encoded
        for _ in range(n):
            send(encoded)
        self.sent += n

    def on_raw_delivery(self, delivery: hot_path.RawDelivery) -> None:
        if not hot_path.delivery_remotely_settled(delivery):
            return
        outcome = hot_path.delivery_remote_state(delivery)
        hot_path.delivery_settle(delivery)
        if outcome != hot_path.ACCEPTED:
            self.error = f"the peer settled a message with outcome {outcome}, not accepted"
        else:
            self.settled += 1
        if self.error or self.settled == self.count:
            self.t1 = time.perf_counter()
            self.routes.remove(self._link)
            self._link.connection.close()


def lean_send(url: str, address: str, count: int, size: int) -> LeanSender:
    """Send ``count`` messages of ``size`` body bytes to ``address`` at ``url``; the rate is ``count / (t1 - t0)``."""
    routes = hot_path.HotRoutes()
    sender = LeanSender(url, address, count, size, routes)
    container = Container(sender)
    hot_path.install(container, routes)
    container.run()
    if sender.error or sender.settled != count:
        raise RuntimeError(
            f"lean sender: {sender.error or f'{sender.settled} of {count} messages settled when the connection ended'}"
        )
    return sender
