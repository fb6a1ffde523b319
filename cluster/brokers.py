"""The brokers placed on hosts: Kafka nodes and Artemis brokers, each bound to its host's address.

The services themselves are :mod:`services`' (the same code that runs them for ``make up``
and the tests); this module only gives each one its host: the host's address, the host's
private folder as its run folder, and the host's launcher (network and mount namespace).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from cluster.hosts import Host
from services.artemis import ArtemisService
from services.fetch import fetch_artemis, fetch_kafka
from services.kafka_cluster import KafkaCluster, KafkaNodeSpec
from services.settings import ServiceSettings

AMQP_PORT = 5672
KAFKA_PORT = 9092
KAFKA_CONTROLLER_PORT = 9093
KAFKA_HEAP = "384m"
ARTEMIS_HEAP = "512m"  # artemis create's profile starts with -Xms512M


@dataclass(frozen=True)
class HostServiceSettings(ServiceSettings):
    """:class:`ServiceSettings` whose processes start through a host's launcher (its namespaces)."""

    host_launcher: tuple[str, ...] = ()

    def launcher(self) -> list[str]:
        return list(self.host_launcher)


def settings_on(host: Host, heap: str) -> HostServiceSettings:
    """Service settings for ``host``: its address, the default ports, its folder, a small heap."""
    return HostServiceSettings(
        **{
            **ServiceSettings.from_env().__dict__,
            "host": host.address,
            "amqp_port": AMQP_PORT,
            "kafka_port": KAFKA_PORT,
            "kafka_controller_port": KAFKA_CONTROLLER_PORT,
            "run_dir": host.folder,
            "jvm_heap": heap,
            "netns": host.netns,
        },
        host_launcher=tuple(host.launcher()),
    )


def artemis_on(host: Host) -> ArtemisService:
    settings = settings_on(host, ARTEMIS_HEAP)
    return ArtemisService(settings, fetch_artemis(settings))


def kafka_cluster_on(hosts: list[Host]) -> KafkaCluster:
    """One KRaft node (broker and controller) on each host, node ids from 1; RF 3, ``min.insync.replicas`` 2.

    Each node has its own folder on its host; the nodes run in their hosts' network
    namespaces (:class:`~services.kafka_cluster.KafkaCluster` starts them there).
    """
    specs = [
        KafkaNodeSpec(
            node_id=i,
            host=h.address,
            port=KAFKA_PORT,
            controller_port=KAFKA_CONTROLLER_PORT,
            folder=h.folder / "kafka",
            netns=h.netns,
        )
        for i, h in enumerate(hosts, start=1)
    ]
    return KafkaCluster(specs, fetch_kafka(ServiceSettings.from_env()), heap=KAFKA_HEAP, num_partitions=2)


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
