"""The foundation: real Artemis, Kafka and Spark, reached over real sockets."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from proton import Message

from services import LocalServices, ServiceSettings
from services.process import ServiceError, port_in_use
from tests import amqp_clients

N = 1000


@pytest.mark.integration
def test_amqp_roundtrip_through_artemis(amqp_url: str, unique_name: Callable[[str], str]) -> None:
    address = unique_name("roundtrip")
    messages = [Message(body=f"reading {i}", properties={"i": i}) for i in range(N)]
    outcomes = amqp_clients.send(amqp_url, address, messages)
    assert outcomes == {"accepted": N, "rejected": 0, "released": 0}
    received = amqp_clients.receive(amqp_url, address, N)
    assert [m.body for m in received] == [f"reading {i}" for i in range(N)]
    assert [m.properties["i"] for m in received] == list(range(N))


@pytest.mark.integration
def test_amqp_user_password_and_wrong_password(amqp_url: str, unique_name: Callable[[str], str]) -> None:
    host_port = amqp_url.split("://", 1)[1]
    address = unique_name("auth")
    assert amqp_clients.send(f"amqp://admin:admin@{host_port}", address, [Message(body="x")])["accepted"] == 1
    with pytest.raises(ConnectionError, match="unauthorized|auth"):
        amqp_clients.send(f"amqp://admin:wrong@{host_port}", address, [Message(body="y")], timeout=10)


def _produce(bootstrap: str, topic: str, count: int) -> None:
    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(count):
        producer.produce(
            topic,
            key=f"device-{i % 7}",
            value=json.dumps({"i": i}).encode(),
            on_delivery=lambda err, msg: errors.append(str(err)) if err else None,
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []


@pytest.fixture(scope="module")
def kafka_topic_with_records(kafka_bootstrap: str) -> str:
    topic = f"foundation-{socket.gethostname()}-{id(object())}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})  # must outlive the future
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    _produce(kafka_bootstrap, topic, N)
    return topic


@pytest.mark.integration
def test_kafka_produce_and_consume(kafka_bootstrap: str, kafka_topic_with_records: str) -> None:
    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": kafka_topic_with_records, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([kafka_topic_with_records])
    seen: list[int] = []
    try:
        while len(seen) < N:
            batch = consumer.consume(num_messages=500, timeout=10)
            assert batch, f"no records within 10 s after {len(seen)}"
            for record in batch:
                assert record.error() is None
                seen.append(json.loads(record.value())["i"])
    finally:
        consumer.close()
    assert sorted(seen) == list(range(N))


@pytest.mark.integration
def test_spark_reads_kafka_with_its_own_connector(spark, kafka_bootstrap: str, kafka_topic_with_records: str) -> None:
    df = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", kafka_bootstrap)
        .option("subscribe", kafka_topic_with_records)
        .option("startingOffsets", "earliest")
        .load()
    )
    rows = df.selectExpr("CAST(key AS STRING) AS key", "CAST(value AS STRING) AS value", "partition").collect()
    assert len(rows) == N
    assert sorted(json.loads(r.value)["i"] for r in rows) == list(range(N))
    # Same key, same partition: the producer's partitioner reached Spark intact.
    by_key: dict[str, set[int]] = {}
    for r in rows:
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values())


@pytest.mark.integration
def test_up_twice_is_harmless_and_down_frees_every_port(tmp_path: Path) -> None:
    settings = ServiceSettings.from_env().with_free_ports(tmp_path)
    first = LocalServices(settings).start()
    pids = (first.artemis.process.pid, first.kafka.process.pid)
    again = LocalServices(settings).start()  # as a second `make up` would, from a fresh process
    assert (again.artemis.process.pid, again.kafka.process.pid) == pids
    again.stop()
    assert first.artemis.process.pid is None and first.kafka.process.pid is None
    for port in (settings.amqp_port, settings.kafka_port, settings.kafka_controller_port):
        assert not port_in_use(settings.host, port), f"port {port} still open after down"


@pytest.mark.unit
def test_port_in_use_gives_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = ServiceSettings.from_env().with_free_ports(tmp_path)
        from dataclasses import replace

        services = LocalServices(replace(settings, amqp_port=port))
        with pytest.raises(ServiceError, match=rf"port {port} .* already in use.*AMQP_PORT"):
            services.artemis.start()


@pytest.mark.unit
def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_PORT", "15672")
    monkeypatch.setenv("KAFKA_PORT", "19092")
    s = ServiceSettings.from_env()
    assert (s.amqp_url, s.kafka_bootstrap) == ("amqp://127.0.0.1:15672", "127.0.0.1:19092")
    monkeypatch.setenv("AMQP_PORT", "not-a-port")
    with pytest.raises(SystemExit, match="AMQP_PORT"):
        ServiceSettings.from_env()
