"""Each broker's fan-out: one address publishers send to, one durable queue per consumer that gets every message.

| broker | publishers send to | consumer ``c`` receives from | created by |
| --- | --- | --- | --- |
| Artemis | ``A`` (MULTICAST address) | ``A::A.c`` (fully qualified queue) | management messages (``demo.topology``) |
| ActiveMQ Classic | ``topic://VirtualTopic.A`` | ``queue://Consumer.c.VirtualTopic.A`` | attaching to the queue once |
| RabbitMQ | ``/exchange/A/A`` (fanout exchange ``A``) | ``/amq/queue/A.c`` | ``rabbitmqctl import_definitions`` |

On ActiveMQ a virtual topic copies each message into every existing ``Consumer.*.VirtualTopic.A``
queue, consumer attached or not, so the queues are created before anything is published. On
RabbitMQ the exchange, the durable queues and their bindings are declared as definitions
through the node's own ``rabbitmqctl`` (the AMQP 1.0 plugin of 3.x cannot declare bindings).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from services.rabbitmq import RabbitMQService
from services.settings import ServiceSettings


class FanoutError(RuntimeError):
    """The broker refused to set up the fan-out; the message says what to do."""


@dataclass(frozen=True)
class Fanout:
    """Where to publish and where each consumer receives, on one broker."""

    publish: str
    sources: dict[str, str]


def fanout_addresses(broker: str, address: str, consumers: list[str]) -> Fanout:
    """The addresses of ``address``'s fan-out to ``consumers`` on ``broker`` (nothing is created)."""
    if broker == "activemq":
        return Fanout(f"topic://VirtualTopic.{address}", {c: f"queue://Consumer.{c}.VirtualTopic.{address}" for c in consumers})
    if broker == "rabbitmq":
        return Fanout(f"/exchange/{address}/{address}", {c: f"/amq/queue/{address}.{c}" for c in consumers})
    return Fanout(address, {c: f"{address}::{address}.{c}" for c in consumers})


def ensure_fanout(settings: ServiceSettings, url: str, address: str, consumers: list[str], purge: bool = True) -> Fanout:
    """Create (idempotently) the fan-out on ActiveMQ or RabbitMQ; empty its queues when ``purge``.

    Artemis's fan-out is created through its management address by ``demo.topology``.
    """
    fanout = fanout_addresses(settings.broker, address, consumers)
    if settings.broker == "activemq":
        for source in fanout.sources.values():
            _attach_and_drain(url, source, purge)
    elif settings.broker == "rabbitmq":
        declare_rabbitmq(
            settings,
            exchanges=[address],
            queues=[f"{address}.{c}" for c in consumers],
            bindings={address: [f"{address}.{c}" for c in consumers]},
        )
        if purge:
            node = RabbitMQService(settings)
            for c in consumers:
                node.ctl("purge_queue", f"{address}.{c}")
    else:
        raise FanoutError("Artemis's fan-out is made by demo.topology.ensure_fanout (management messages)")
    return fanout


def declare_rabbitmq(
    settings: ServiceSettings, queues: list[str], exchanges: list[str] = (), bindings: dict[str, list[str]] | None = None
) -> None:
    """Declare durable fanout ``exchanges``, durable ``queues`` and ``bindings`` (exchange -> queues) on the local node."""
    definitions = {
        "exchanges": [
            {"name": x, "vhost": "/", "type": "fanout", "durable": True, "auto_delete": False, "internal": False, "arguments": {}}
            for x in exchanges
        ],
        "queues": [{"name": q, "vhost": "/", "durable": True, "auto_delete": False, "arguments": {}} for q in queues],
        "bindings": [
            {"source": x, "vhost": "/", "destination": q, "destination_type": "queue", "routing_key": "", "arguments": {}}
            for x, qs in (bindings or {}).items()
            for q in qs
        ],
    }
    node = RabbitMQService(settings)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "definitions.json"
        path.write_text(json.dumps(definitions))
        node.ctl("import_definitions", str(path))
    # The import is asynchronous: wait until every queue is listed.
    missing = set(queues)
    for _ in range(50):
        listed = set(node.ctl("list_queues", "name", "--quiet", "--no-table-headers").split())
        missing = set(queues) - listed
        if not missing:
            return
    raise FanoutError(f"RabbitMQ did not declare the queues {sorted(missing)}; see {node.process.log_file}")


def _attach_and_drain(url: str, address: str, purge: bool) -> None:
    from proton.utils import BlockingConnection

    connection = BlockingConnection(url, timeout=30)
    try:
        receiver = connection.create_receiver(address, credit=100 if purge else 0)
        while purge:
            try:
                receiver.receive(timeout=0.5)  # an empty queue delivers nothing: the receive times out
            except Exception:  # noqa: BLE001 - proton.Timeout: drained
                break
            receiver.accept()
    finally:
        connection.close()
