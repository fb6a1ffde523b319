"""Settings precedence and validation, link address parsing: no services needed."""

from __future__ import annotations

import pytest
from amqp_kafka_bridge.endpoint import AddressError, parse_source
from amqp_kafka_bridge.filters import FilterError
from amqp_kafka_bridge.settings import BridgeSettings
from proton import Described, ulong
from pydantic import ValidationError

pytestmark = pytest.mark.unit


def test_precedence_flags_over_env_over_file(tmp_path, monkeypatch):
    config = tmp_path / "bridge.yaml"
    config.write_text("amqp_port: 6000\nhttp_port: 6001\nconverter: json\nkafka_producer:\n  linger.ms: 9\n")
    monkeypatch.setenv("BRIDGE_HTTP_PORT", "7001")
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "kafka:9092")
    s = BridgeSettings.load(config, amqp_port=5999)
    assert (s.amqp_port, s.http_port, s.converter, s.kafka_bootstrap) == (5999, 7001, "json", "kafka:9092")
    conf = s.producer_config()
    assert conf["linger.ms"] == "9" and conf["acks"] == "all" and conf["enable.idempotence"] is True
    assert conf["max.in.flight.requests.per.connection"] == 1  # the default: fewer, bigger produce requests
    s = BridgeSettings.load(kafka_producer={"max.in.flight.requests.per.connection": "5"})
    assert s.producer_config()["max.in.flight.requests.per.connection"] == "5"  # the operator's choice wins


def test_invalid_values_name_the_option(monkeypatch):
    monkeypatch.setenv("BRIDGE_CONVERTER", "xml")
    with pytest.raises(ValidationError) as err:
        BridgeSettings.load()
    assert "converter" in str(err.value) and "'raw', 'json' or 'amqp'" in str(err.value)


def test_plain_needs_users_and_secrets_are_redacted(monkeypatch, tmp_path):
    with pytest.raises(ValidationError, match="sasl_db_file"):
        BridgeSettings.load(sasl_mechanisms="PLAIN")
    db = tmp_path / "users.sasldb"
    db.write_bytes(b"")
    with pytest.raises(ValidationError, match="allow_plain_without_tls"):
        BridgeSettings.load(sasl_mechanisms="PLAIN", sasl_db_file=db)
    s = BridgeSettings.load(
        sasl_mechanisms="ANONYMOUS,SCRAM-SHA-256",
        sasl_db_file=db,
        tls_key_password="pw!",
        kafka_producer={"sasl.password": "kpw"},
    )
    text = str(s.redacted()) + repr(s)
    assert "pw!" not in text and "kpw" not in text


def test_routes_file(tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "routes:\n  - {address: temperature, topic: temps}\n  - {address: max, topic: max, direction: to-amqp, group: g}\n"
    )
    s = BridgeSettings.load(routes_file=routes)
    assert s.topic_for("temperature") == "temps" and s.topic_for("other") == "other"
    assert s.routes[1].direction == "to-amqp"


def test_parse_source():
    assert parse_source("t/group.id/g", None, None)[0].group == "g"
    spec, _ = parse_source(
        "t",
        {"group.id": "g2"},
        {"x-opt-bridge.partition-filter:int": Described(ulong(0x1), 2), "x-opt-bridge.offset-filter:long": 9},
    )
    assert (spec.topic, spec.group, spec.partition, spec.offset) == ("t", "g2", 2, 9)
    for address, props, filters in [
        ("t", None, None),
        ("", None, None),
        ("t/group.id/g", None, {"x-opt-bridge.offset-filter:long": 1}),
    ]:
        with pytest.raises((AddressError, FilterError)):
            parse_source(address, props, filters)
