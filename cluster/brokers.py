"""The brokers placed on hosts: three Kafka nodes and a replicated Artemis pair, each bound to its host.

The services themselves are :mod:`services`' (:class:`~services.kafka_cluster.KafkaCluster`,
:class:`~services.artemis_ha.ArtemisHaPair`); this module only gives each node its host: the
host's address, a folder of its own on that host, and the host's launcher (its network and
mount namespaces), so a broker sees no other host's files.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from cluster.hosts import Host
from services.artemis_ha import ArtemisHaPair, ArtemisNodeSpec
from services.fetch import fetch_artemis, fetch_kafka
from services.kafka_cluster import KafkaCluster, KafkaNodeSpec
from services.settings import ServiceSettings

AMQP_PORT = 5672
KAFKA_PORT = 9092
KAFKA_CONTROLLER_PORT = 9093
HEAP = "384m"


def kafka_cluster_on(hosts: list[Host]) -> KafkaCluster:
    """One KRaft node (broker and controller) on each host, node ids from 1; RF 3, ``min.insync.replicas`` 2."""
    specs = [
        KafkaNodeSpec(
            node_id=i, host=h.address, port=KAFKA_PORT, controller_port=KAFKA_CONTROLLER_PORT, folder=h.folder / "kafka",
            launcher=tuple(h.launcher()),
        )
        for i, h in enumerate(hosts, start=1)
    ]  # fmt: skip
    return KafkaCluster(specs, fetch_kafka(ServiceSettings.from_env()), heap=HEAP, num_partitions=2)


def artemis_pair_on(primary: Host, backup: Host) -> ArtemisHaPair:
    """The replicated Artemis primary on one host and its backup on another; clients get ``pair.url`` (both)."""
    settings = ServiceSettings.from_env()
    specs = [ArtemisNodeSpec(h.address, AMQP_PORT, h.folder / "artemis", launcher=tuple(h.launcher())) for h in (primary, backup)]
    return ArtemisHaPair(specs[0], specs[1], fetch_artemis(settings), settings=settings, heap=HEAP)


def create_topics(bootstrap: str, topics: list[str], partitions: int, replicas: int, timeout: float = 60.0) -> None:
    """Create ``topics`` replicated ``replicas`` times (``min.insync.replicas`` = 2 when replicated);
    return once every partition has a leader and its full in-sync replica set."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"min.insync.replicas": "2"} if replicas >= 3 else {}
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=replicas, config=config) for t in topics],
        request_timeout=timeout,
    )
    for topic, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            raise RuntimeError(f"cannot create Kafka topic {topic!r}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=10).topics
        if all(
            t in metadata
            and len(metadata[t].partitions) == partitions
            and all(p.leader >= 0 and len(p.isrs) == replicas for p in metadata[t].partitions.values())
            for t in topics
        ):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"Kafka topics {topics} have no full in-sync replica sets after {timeout:.0f} s")
        time.sleep(0.2)  # polling the cluster's metadata, bounded by the deadline
