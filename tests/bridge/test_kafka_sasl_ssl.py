"""The bridge in front of a Kafka that requires SASL_SSL: a private Kafka with a SASL_SSL listener (a test CA,
a SCRAM user created by Kafka's own storage tool), the bridge configured with librdkafka keys only."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition
from proton import Message

from services import ServiceSettings
from services.fetch import fetch_kafka
from services.kafka import KafkaSaslSsl, KafkaService
from services.settings import free_port
from tests.bridge.clients import send
from tests.bridge.helpers import BridgeProcess, wait_ready
from tests.security.certificates import TestPki, make_pki

pytestmark = pytest.mark.integration

KAFKA_USER, KAFKA_PASSWORD = "bridge", "kafka-Scram-Secret-5"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_pki(tmp_path_factory.mktemp("kafka-pki"), password="store-pw-77")


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Iterator[KafkaService]:
    run_dir = tmp_path_factory.mktemp("kafka-sasl-ssl")
    base = replace(ServiceSettings.from_env().with_free_ports(run_dir), jvm_heap="384m")
    listener = KafkaSaslSsl(free_port(base.host), pki.server_p12, pki.p12_password, {KAFKA_USER: KAFKA_PASSWORD})
    kafka = KafkaService(base, fetch_kafka(base), sasl_ssl=listener)
    kafka.start()
    try:
        kafka.wait_ready(120)
        yield kafka
    finally:
        kafka.stop()


def client_security(pki: TestPki, password: str = KAFKA_PASSWORD) -> dict[str, str]:
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-256",
        "sasl.username": KAFKA_USER,
        "sasl.password": password,
        "ssl.ca.location": str(pki.ca_cert),
    }


def test_the_bridge_produces_to_a_sasl_ssl_listener(secure_kafka, pki, unique_name, tmp_path: Path):
    bootstrap = secure_kafka.sasl_ssl_bootstrap
    assert bootstrap is not None
    config = tmp_path / "bridge.yaml"
    config.write_text(yaml.safe_dump({"kafka_common": client_security(pki)}))
    bridge = BridgeProcess(bootstrap, tmp_path / "bridge.log", ["--config", str(config)])
    bridge.start(timeout=90)
    try:
        topic = unique_name("secure")
        result = send(bridge.url, topic, [Message(body=b"over SASL_SSL", inferred=True)], timeout=60)
        assert result.outcomes == ["accepted"], result
        consumer = Consumer({"group.id": "check", **client_security(pki), "bootstrap.servers": bootstrap})
        try:
            consumer.assign([TopicPartition(topic, 0, 0)])
            got = consumer.consume(1, 30)
            assert [m.value() for m in got if m.error() is None] == [b"over SASL_SSL"]
        finally:
            consumer.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{bridge.http_port}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        log = bridge.log.read_text()
        assert KAFKA_PASSWORD not in log + metrics and '"sasl.password": "***"' in log
    finally:
        bridge.stop()


def test_a_wrong_kafka_password_keeps_the_bridge_not_ready(secure_kafka, pki, tmp_path: Path):
    config = tmp_path / "bridge.yaml"
    config.write_text(yaml.safe_dump({"kafka_common": client_security(pki, "not-the-kafka-password")}))
    bridge = BridgeProcess(secure_kafka.sasl_ssl_bootstrap, tmp_path / "bridge.log", ["--config", str(config)])
    bridge.start(wait=False)
    try:
        with pytest.raises(AssertionError, match="did not answer 200"):
            wait_ready(bridge.http_port, bridge.proc, bridge.log, timeout=20)  # type: ignore[arg-type]
        assert "not-the-kafka-password" not in bridge.log.read_text()
    finally:
        bridge.stop()
