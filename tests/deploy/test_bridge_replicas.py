"""Two bridge replicas in forwarder mode share the work, as ``docker compose`` runs them (``deploy.replicas: 2``).

Both ``amqp-kafka-bridge`` processes get the same settings from the environment: a ``to-kafka``
route from one broker queue (competing consumers: each message goes to one replica) and a
``to-amqp`` route from one topic in one consumer group (each partition goes to one
replica). Every message must be in Kafka exactly once, every record on the broker once, and
both replicas must have done part of the work.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from proton import Message

from deploy.standalone import free_port
from tests import amqp_clients
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPO_ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 2000
RECORDS = 1000
PARTITIONS = 2


class Replica:
    """One ``amqp-kafka-bridge`` process configured only through the environment, like a container."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.http_port = free_port()
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "amqp_kafka_bridge"],
                cwd=REPO_ROOT,
                env={**env, "BRIDGE_HTTP_PORT": str(self.http_port)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=3) as resp:
                return resp.status, resp.read().decode()
        except OSError:
            return 0, ""

    def ready(self) -> bool:
        assert self.proc.poll() is None, f"bridge exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
        return self.get("/readyz")[0] == 200

    def counter(self, name: str) -> float:
        """Sum of a Prometheus counter over its labels."""
        text = self.get("/metrics")[1]
        return sum(float(v) for v in re.findall(rf"^{name}_total(?:{{[^}}]*}})? (\S+)$", text, re.M))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: drain and exit
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], list[Replica]]]:
    started: list[Replica] = []

    def start(env: dict[str, str]) -> list[Replica]:
        started.extend(Replica(env, tmp_path / f"bridge-{i}.log") for i in range(2))
        for r in started:
            wait_for(r.ready, 60, f"bridge replica on :{r.http_port} to be ready")
        return started

    yield start
    codes = [r.stop() for r in started]
    assert codes == [0] * len(started), f"a replica did not drain cleanly: {codes}"


def high_watermarks(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hw-{topic}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def read_all(bootstrap: str, topic: str, count: int, timeout: float) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            values += [m.value() for m in consumer.consume(1000, 0.5) if m.error() is None]
    finally:
        consumer.close()
    return values


def committed(bootstrap: str, topic: str, group: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        return sum(max(tp.offset, 0) for tp in offsets)
    finally:
        consumer.close()


def group_members_with_partitions(admin: AdminClient, group: str) -> int:
    """Members of the consumer group that have at least one partition assigned (0 while it is rebalancing)."""
    try:
        description = admin.describe_consumer_groups([group])[group].result(10)
    except KafkaException:
        return 0  # the group does not exist yet
    return sum(1 for m in description.members if m.assignment and m.assignment.topic_partitions)


def test_two_forwarder_replicas_share_the_work_and_forward_every_message_once(
    replicas: Callable[[dict[str, str]], list[Replica]],
    amqp_url: str,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    address_in, topic_in = unique_name("replicas-in"), unique_name("replicas-in")
    topic_out, address_out, group = unique_name("replicas-out"), unique_name("replicas-out"), unique_name("replicas")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for topic in (topic_in, topic_out):
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        json.dumps(
            {
                "routes": [
                    {"address": address_in, "topic": topic_in},
                    {"address": address_out, "topic": topic_out, "direction": "to-amqp", "group": group},
                ]
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(
        BRIDGE_MODE="forwarder",
        BRIDGE_BROKER_URLS=json.dumps([amqp_url]),
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        BRIDGE_ROUTES_FILE=str(routes),
        BRIDGE_KEY_PROPERTY="device_id",
        BRIDGE_HTTP_HOST="127.0.0.1",
        BRIDGE_LOG_LEVEL="WARNING",
    )
    pair = replicas(env)

    # AMQP -> Kafka: one queue, two competing consumers.
    bodies = [f"reading-{i}".encode() for i in range(MESSAGES)]
    messages = [Message(body=b, properties={"device_id": f"device-{i % 7}"}) for i, b in enumerate(bodies)]
    assert amqp_clients.send(amqp_url, address_in, messages, timeout=60)["accepted"] == MESSAGES
    got = read_all(kafka_bootstrap, topic_in, MESSAGES, timeout=60)
    assert sorted(got) == sorted(bodies)
    assert high_watermarks(kafka_bootstrap, topic_in) == MESSAGES, "a message was written to Kafka twice"
    shares = [r.counter("bridge_amqp_to_kafka_messages") for r in pair]
    assert sum(shares) == MESSAGES and all(shares), f"both replicas must forward a share: {shares}"

    # Kafka -> AMQP: one consumer group, each replica owns a partition once the group has settled.
    wait_for(lambda: group_members_with_partitions(admin, group) == 2, 60, f"both replicas to own a partition in group {group}")
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for i in range(RECORDS):
        producer.produce(topic_out, value=f"result-{i}".encode(), partition=i % PARTITIONS)
    assert producer.flush(30) == 0
    received: list[Message] = []
    deadline = time.monotonic() + 60
    while len(received) < RECORDS and time.monotonic() < deadline:
        received += amqp_clients.receive(amqp_url, address_out, RECORDS - len(received), timeout=5)
    assert sorted(bytes(m.body) for m in received) == sorted(f"result-{i}".encode() for i in range(RECORDS))
    wait_for(lambda: committed(kafka_bootstrap, topic_out, group) == RECORDS, 30, "the group to commit every record")
    shares = [r.counter("bridge_kafka_to_amqp_messages") for r in pair]
    assert sum(shares) == RECORDS and all(shares), f"each replica must own a partition: {shares}"
    # Nothing arrives twice: the address is empty once every record was accepted and committed.
    assert amqp_clients.receive(amqp_url, address_out, 1, timeout=2) == []
