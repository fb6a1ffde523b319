"""What the demo creates before anything publishes: the broker fan-out and the Kafka topics.

Artemis management over AMQP (messages to ``activemq.management``) creates the MULTICAST
address and its durable queues, so readings sent before the Spark job attaches wait for
it. Queues are purged at the start of a run: the accepted log of this run is the ground
truth, and leftovers of an interrupted earlier run would not be in it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from proton import Message
from proton.utils import BlockingConnection


class TopologyError(RuntimeError):
    """The broker or Kafka refused to set up what the demo needs."""


class ArtemisManagement:
    """Calls Artemis management operations (``resource``, ``operation``, JSON-array parameters)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._connection = BlockingConnection(url, timeout=timeout)
        self._replies = self._connection.create_receiver(None, dynamic=True)
        self._requests = self._connection.create_sender("activemq.management")
        self._timeout = timeout

    def call(self, resource: str, operation: str, *params: object) -> tuple[bool, object]:
        """``(succeeded, result)``; ``result`` is the decoded JSON reply (the error text on failure)."""
        request = Message(
            body=json.dumps(list(params)),
            reply_to=self._replies.remote_source.address,
            properties={"_AMQ_ResourceName": resource, "_AMQ_OperationName": operation},
        )
        self._requests.send(request)
        reply = self._replies.receive(timeout=self._timeout)
        self._replies.accept()
        ok = bool(reply.properties.get("_AMQ_OperationSucceeded"))
        body = reply.body
        result = json.loads(body) if isinstance(body, str) else body
        return ok, result[0] if isinstance(result, list) and len(result) == 1 else result

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> ArtemisManagement:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ensure_fanout(url: str, address: str, fqqns: Iterable[str]) -> None:
    """Make ``address`` MULTICAST with a durable, purged queue per ``address::queue`` in ``fqqns``.

    Raises :class:`TopologyError` if ``address`` exists without MULTICAST routing (e.g.
    auto-created as an anycast queue by an earlier publisher): silently adding a second
    routing type would leave readings split between consumers.
    """
    with ArtemisManagement(url) as mgmt:
        ok, _ = mgmt.call("address." + address, "getRoutingTypesAsJSON")
        if not ok:
            ok, result = mgmt.call("broker", "createAddress", address, "MULTICAST")
            if not ok:
                raise TopologyError(f"cannot create address {address!r}: {result}")
        ok, result = mgmt.call("address." + address, "getRoutingTypesAsJSON")
        if "MULTICAST" not in str(result):
            raise TopologyError(
                f"address {address!r} exists with routing types {result}; the demo needs it MULTICAST so the job "
                "and the bridge both get every reading: delete it (artemis address delete) or pick another address"
            )
        for fqqn in fqqns:
            queue = fqqn.split("::", 1)[1]
            config = {"name": queue, "address": address, "routing-type": "MULTICAST", "durable": True}
            ok, result = mgmt.call("broker", "createQueue", json.dumps(config), True)
            if not ok:
                raise TopologyError(f"cannot create queue {queue!r} on {address!r}: {result}")
            ok, result = mgmt.call("queue." + queue, "removeAllMessages")
            if not ok:
                raise TopologyError(f"cannot purge queue {queue!r}: {result}")


def ensure_topics(bootstrap: str, topics: Iterable[str], timeout: float = 30.0) -> None:
    """Create the Kafka topics (one partition each) unless they exist; return once each partition has a leader.

    Pitfall: right after creation (or on a just-started broker) a partition has no leader
    yet and offset requests fail with ``NOT_LEADER_FOR_PARTITION``; hence the wait.
    """
    topics = list(topics)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=timeout).topics
    wanted = [NewTopic(t, num_partitions=1, replication_factor=1) for t in topics if t not in existing]
    for topic, future in admin.create_topics(wanted, request_timeout=timeout).items() if wanted else ():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise TopologyError(f"cannot create Kafka topic {topic!r}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=timeout).topics
        if all(
            t in metadata
            and metadata[t].error is None
            and metadata[t].partitions
            and all(p.leader >= 0 and p.error is None for p in metadata[t].partitions.values())
            for t in topics
        ):
            return
        if time.monotonic() > deadline:
            raise TopologyError(f"Kafka topics {topics} have no partition leaders after {timeout:.0f} s")
        time.sleep(0.2)  # polling the broker's metadata, bounded by the deadline
