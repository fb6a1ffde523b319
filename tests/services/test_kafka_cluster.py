"""The 3-node KRaft cluster survives the SIGKILL of a partition leader: nothing acknowledged is lost, the node rejoins."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from services.fetch import fetch_kafka
from services.kafka_cluster import KafkaCluster, KafkaNodeSpec, local_nodes
from services.process import ServiceError
from services.settings import ServiceSettings
from tests.kafka_clients import consume

# Three "hosts" on loopback addresses of their own (all of 127/8 is local on Linux).
HOSTS = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
BATCH = 300


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    libs = fetch_kafka(ServiceSettings.from_env())
    kafka = KafkaCluster(local_nodes(3, tmp_path_factory.mktemp("kafka-cluster"), HOSTS), libs)
    try:
        kafka.start()
        kafka.wait_ready(timeout=180)
        yield kafka
    finally:
        kafka.stop()


def _produce(producer: Producer, topic: str, values: range) -> None:
    """Produce with acks=all and fail unless every record was acknowledged."""
    errors: list[str] = []
    for i in values:
        producer.produce(
            topic, key=str(i % 7), value=json.dumps({"i": i}).encode(), on_delivery=lambda e, m: e and errors.append(str(e))
        )
        producer.poll(0)
    assert producer.flush(120) == 0, "records still in flight after 120 s"
    assert errors == []


@pytest.mark.integration
def test_cluster_settings_are_the_replicated_ones(cluster: KafkaCluster) -> None:
    assert cluster.registered_brokers() == {1, 2, 3}
    # Ready means consumer groups work even if a node dies before the first group appears.
    offsets = cluster.partitions("__consumer_offsets")
    assert offsets and all(sorted(replicas) == [1, 2, 3] for _, replicas, _ in offsets.values())
    assert len(cluster.bootstrap.split(",")) == 3
    text = cluster.node(2).config.read_text()
    for line in (
        "process.roles=broker,controller",
        "default.replication.factor=3",
        "min.insync.replicas=2",
        "offsets.topic.replication.factor=3",
        "transaction.state.log.replication.factor=3",
        "transaction.state.log.min.isr=2",
        f"controller.quorum.bootstrap.servers={','.join(s.controller_endpoint for s in cluster.specs)}",
    ):
        assert line in text.splitlines()
    # An auto-created topic gets three replicas, one on each node.
    topic = f"auto-{uuid.uuid4().hex[:8]}"
    _produce(Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"}), topic, range(3))
    parts = cluster.partitions(topic)
    assert parts and all(sorted(replicas) == [1, 2, 3] for _, replicas, _ in parts.values())


@pytest.mark.integration
def test_leader_killed_nothing_lost_and_it_rejoins_the_isr(cluster: KafkaCluster) -> None:
    topic = f"replicated-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3)])[topic].result(60)
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True})
    _produce(producer, topic, range(BATCH))

    leader = cluster.wait_leaders(topic)[0]
    cluster.kill(leader)
    assert leader not in cluster.running()
    new_leaders = cluster.wait_leaders(topic, excluding=[leader], timeout=90)
    assert new_leaders[0] != leader
    (_, replicas, isr) = cluster.partitions(topic)[0]
    assert leader in replicas and leader not in isr

    # Two in-sync replicas are left = min.insync.replicas: acks=all writes still succeed.
    _produce(producer, topic, range(BATCH, 2 * BATCH))
    records = consume(cluster.bootstrap, topic, 2 * BATCH, timeout=90)
    assert sorted(json.loads(v)["i"] for _, v in records) == list(range(2 * BATCH))

    cluster.start_node(leader)
    cluster.wait_registered([leader], timeout=120)
    cluster.wait_in_sync(topic, leader, timeout=120)
    assert leader in cluster.partitions(topic)[0][2]


@pytest.mark.unit
def test_a_half_formatted_cluster_is_refused(tmp_path: Path) -> None:
    libs = fetch_kafka(ServiceSettings.from_env())
    specs = local_nodes(2, tmp_path)
    (specs[0].folder / "data").mkdir(parents=True)
    (specs[0].folder / "data" / "meta.properties").write_text("cluster.id=x\n")
    with pytest.raises(ServiceError, match=r"nodes \[1\] have formatted storage but nodes \[2\] do not"):
        KafkaCluster(specs, libs).start()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"replication_factor": 4}, r"replication_factor \(4\) <= nodes \(3\)"),
        ({"min_insync": 3, "replication_factor": 2}, r"min_insync \(3\) <= replication_factor \(2\)"),
    ],
)
def test_impossible_replication_settings_are_refused(tmp_path: Path, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KafkaCluster(local_nodes(3, tmp_path), tmp_path, **kwargs)


@pytest.mark.unit
def test_node_ids_must_be_unique_and_known(tmp_path: Path) -> None:
    specs = local_nodes(2, tmp_path)
    with pytest.raises(ValueError, match=r"node ids must be unique, got \[1, 1\]"):
        KafkaCluster([specs[0], specs[0]], tmp_path)
    with pytest.raises(ValueError, match=r"no Kafka node 7; the nodes are \[1, 2\]"):
        KafkaCluster(specs, tmp_path).node(7)


@pytest.mark.unit
def test_a_node_runs_where_its_spec_says(tmp_path: Path) -> None:
    plain = local_nodes(1, tmp_path)[0]
    assert plain.command_prefix() == []
    netns = KafkaNodeSpec(2, "10.0.0.2", 9092, 9093, tmp_path, netns="h2")
    assert netns.command_prefix() == ["ip", "netns", "exec", "h2"]
    launcher = KafkaNodeSpec(2, "10.0.0.2", 9092, 9093, tmp_path, netns="h2", launcher=("nsenter", "-t", "1"))
    assert launcher.command_prefix() == ["nsenter", "-t", "1"]
    assert KafkaNodeSpec(3, "0.0.0.0", 9092, 9093, tmp_path, advertised_host="10.0.0.3").bootstrap == "10.0.0.3:9092"
