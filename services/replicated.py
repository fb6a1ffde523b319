"""The replicated services on one machine from the usual settings: ``python -m services up --kafka-nodes 3 --artemis-ha``.

The same :class:`~services.kafka_cluster.KafkaCluster` and
:class:`~services.artemis_ha.ArtemisHaPair` the cluster harness places on separate hosts,
here all on ``SERVICES_HOST`` with ports counted up from the usual ones, for trying
failover by hand. Port layout: Kafka node ``i`` (1-based) listens on ``KAFKA_PORT + 2(i-1)``
with its controller on the next port (9092/9093, 9094/9095, 9096/9097); the Artemis primary
on ``AMQP_PORT`` (5672) and the backup on ``AMQP_PORT + 2`` (5674; 5673 is the bridge's).
State lives in ``<run>/kafka-cluster/kafka-<i>`` and ``<run>/artemis-ha/artemis-{primary,backup}``.
Limits: one host, so a failover here shows the brokers' behaviour, not a network partition.
"""

from __future__ import annotations

from pathlib import Path

from services.artemis_ha import ArtemisHaPair, ArtemisNodeSpec
from services.kafka_cluster import KafkaCluster, KafkaNodeSpec
from services.settings import ServiceSettings

BACKUP_PORT_OFFSET = 2


def kafka_node_specs(settings: ServiceSettings, nodes: int) -> list[KafkaNodeSpec]:
    """``nodes`` Kafka node specs on ``settings.host``, ports counted up in pairs from ``settings.kafka_port``."""
    if nodes < 1:
        raise ValueError(f"--kafka-nodes must be at least 1, got {nodes}")
    root = settings.run_dir / "kafka-cluster"
    return [
        KafkaNodeSpec(
            node_id=i,
            host=settings.host,
            port=settings.kafka_port + 2 * (i - 1),
            controller_port=settings.kafka_port + 2 * (i - 1) + 1,
            folder=root / f"kafka-{i}",
        )
        for i in range(1, nodes + 1)
    ]


def kafka_cluster(settings: ServiceSettings, nodes: int, kafka_libs: Path) -> KafkaCluster:
    return KafkaCluster(kafka_node_specs(settings, nodes), kafka_libs, heap="384m")


def artemis_pair(settings: ServiceSettings, artemis_home: Path) -> ArtemisHaPair:
    """The primary on ``settings.amqp_port``, the backup two ports up, both on ``settings.host``."""
    root = settings.run_dir / "artemis-ha"
    primary = ArtemisNodeSpec(settings.host, settings.amqp_port, root / "artemis-primary")
    backup = ArtemisNodeSpec(settings.host, settings.amqp_port + BACKUP_PORT_OFFSET, root / "artemis-backup")
    return ArtemisHaPair(primary, backup, artemis_home, settings=settings)


def cluster_nodes_on_disk(settings: ServiceSettings) -> int:
    """How many Kafka cluster nodes an earlier ``up --kafka-nodes N`` left folders for (0: none)."""
    root = settings.run_dir / "kafka-cluster"
    return len(list(root.glob("kafka-*/server.properties"))) if root.is_dir() else 0
