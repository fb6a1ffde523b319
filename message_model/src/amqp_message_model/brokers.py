"""Where AMQP 1.0 brokers differ in a way a sender must handle: RabbitMQ's queue targets.

RabbitMQ 3.x (the ``rabbitmq_amqp1_0`` plugin) publishes a message sent to
``/amq/queue/<q>`` to its default exchange with routing key ``<q>``: when no queue ``<q>``
exists the message is dropped *and still settled accepted*. A sender that believed that
outcome would count a lost message as delivered. So before the first send to such a
target, :class:`QueueProbe` checks that the queue exists: it attaches a receiver to the
same address on a session of its own and grants it one credit, which makes RabbitMQ
subscribe to the queue. A missing queue ends that session with ``amqp:not-found`` (the
caller fails the send with that reason). An existing queue may deliver one message, which
the probe releases unread (it goes back to the queue, marked as delivered once); either
way, the broker's answer to a second attach on the same session, which it handles only
after the subscription, says the queue is there. (Drain mode would be the natural
question, but RabbitMQ 3.10 ends the session with ``amqp:internal-error`` when asked to
drain a classic queue.)

Other brokers need no probe: Artemis refuses an undeclared address it may not create
(``amqp:not-found``) and ActiveMQ Classic creates every address it is sent to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from proton import Connection
from proton.handlers import MessagingHandler

RABBITMQ_QUEUE_PREFIX = "/amq/queue/"


def broker_product(connection: Connection | None) -> str | None:
    """The ``product`` the broker announced in its open frame (``RabbitMQ``, ``apache-activemq-artemis``, ...)."""
    props = connection.remote_properties if connection is not None else None
    if not props:
        return None
    for key, value in props.items():
        if str(key) == "product":
            return str(value)
    return None


def needs_queue_probe(connection: Connection | None, address: str) -> bool:
    """True for a RabbitMQ ``/amq/queue/<q>`` target: sends there are dropped-but-accepted when ``<q>`` is missing."""
    return address.startswith(RABBITMQ_QUEUE_PREFIX) and broker_product(connection) == "RabbitMQ"


def missing_queue_reason(address: str, condition: Any) -> str:
    """The error a sender reports when the probe found no queue behind ``address``."""
    detail = f"{condition.name}: {condition.description}" if condition is not None else "session ended"
    queue = address[len(RABBITMQ_QUEUE_PREFIX) :]
    return (
        f"RabbitMQ has no queue {queue!r} ({detail}); it would accept and drop every message sent to {address!r}: "
        f"declare the queue first (durable), or send to '/queue/{queue}', which declares a non-durable one"
    )


class QueueProbe(MessagingHandler):
    """One credit, then a marker attach, on a private session: ``on_verified(address)`` once the queue answered.

    A missing queue ends the probe's session with an error; that event reaches the
    connection's handler, which recognises the session through :attr:`session`.
    """

    def __init__(self, container: Any, connection: Connection, address: str, on_verified: Callable[[str], None]) -> None:
        super().__init__(prefetch=0, auto_accept=False, auto_settle=False)
        self.address = address
        self.on_verified = on_verified
        self.done = False
        self.session = connection.session()
        self.session.open()
        self.container = container
        self.link = container.create_receiver(self.session, address, name=f"queue-probe-{address}", handler=self)
        self.marker: Any = None

    def on_link_opened(self, event: Any) -> None:
        if self.done:
            return
        if event.link == self.link:
            self.link.flow(1)
            self.marker = self.container.create_receiver(
                self.session, self.address, name=f"queue-probe-marker-{self.address}", handler=self
            )
        elif self.marker is not None and event.link == self.marker:
            self._verified()

    def on_message(self, event: Any) -> None:
        self.release(event.delivery, delivered=False)
        self._verified()

    def _verified(self) -> None:
        if not self.done:
            self.done = True
            self.close()
            self.on_verified(self.address)

    def close(self) -> None:
        """Detach and end the probe's session (idempotent)."""
        self.done = True
        for link in (self.link, self.marker):
            if link is not None:
                link.close()
        self.session.close()
