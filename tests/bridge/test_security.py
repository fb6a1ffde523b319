"""The bridge in front of a network: SASL through Cyrus (PLAIN and SCRAM over TLS, EXTERNAL with client
certificates), acl rules, and Strimzi clients' filters, against the real Kafka and a real bridge."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from amqp_kafka_bridge.sasl import add_user
from confluent_kafka import Consumer, TopicPartition
from proton import ConnectionException, Message, SSLDomain, int32, symbol
from proton.reactor import Filter
from proton.utils import BlockingConnection, LinkDetached

from tests.bridge.helpers import BridgeProcess, committed, consume, create_topic, free_port_run, produce
from tests.bridge.pki import BridgePki, make_bridge_pki

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not __import__("proton").SASL.extended(), reason="needs Cyrus")]

PASSWORDS = {"alice": "alice-Secret-9", "bob": "bob-Secret-7"}


@pytest.fixture(scope="module")
def sasldb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("sasl") / "users.sasldb"
    for user, password in PASSWORDS.items():
        add_user(db, user, password)
    return db


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> BridgePki:
    return make_bridge_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def start_process(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Callable[..., BridgeProcess]]:
    """``start_process(**settings)`` -> a ready ``amqp-kafka-bridge`` process configured by a YAML file.

    A process of its own for each: Cyrus SASL is configured once per process.
    """
    running: list[BridgeProcess] = []

    def start(**settings: Any) -> BridgeProcess:
        config = tmp_path / f"bridge-{len(running)}.yaml"
        config.write_text(yaml.safe_dump(_plain(settings)))
        bridge = BridgeProcess(kafka_bootstrap, tmp_path / f"bridge-{len(running)}.log", ["--config", str(config)])
        workers = settings.get("workers", 1)
        if workers > 1:  # the supervisor on http_port, worker i on http_port + 1 + i
            bridge.http_port = free_port_run(1 + workers)
        running.append(bridge)
        bridge.start()
        return bridge

    yield start
    for bridge in running:
        bridge.stop()


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def command_lines() -> dict[str, str]:
    """Every process's command line, as ``ps`` shows them to any local user."""
    lines = {}
    for entry in Path("/proc").iterdir():
        try:
            lines[entry.name] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return lines


def metrics_of(bridge: BridgeProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{bridge.http_port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def client_tls(pki: BridgePki, cert: Path | None = None, key: Path | None = None) -> SSLDomain:
    domain = SSLDomain(SSLDomain.MODE_CLIENT)
    domain.set_trusted_ca_db(str(pki.ca))
    domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME, str(pki.ca))
    if cert is not None:
        domain.set_credentials(str(cert), str(key), None)
    return domain


def connect(url: str, mech: str | None = None, user: str | None = None, password: str | None = None, **kw: Any) -> Any:
    if mech is not None:
        kw.update(allowed_mechs=mech, allow_insecure_mechs=mech == "PLAIN")
    return BlockingConnection(url, timeout=15, user=user, password=password, **kw)


def send_one(url: str, topic: str, body: bytes, **kw: Any) -> None:
    conn = connect(url, **kw)
    try:
        conn.create_sender(topic).send(Message(body=body, inferred=True))
    finally:
        conn.close()


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "PLAIN"])
def test_password_mechanisms_over_tls(start_process, kafka_bootstrap, unique_name, sasldb, pki, mech):
    bridge = start_process(
        sasl_mechanisms=[mech], sasl_db_file=sasldb, tls_cert_file=pki.server_cert, tls_key_file=pki.server_key
    )
    tls_url = bridge.url.replace("amqp://", "amqps://")
    topic = unique_name("tls-sasl")
    send_one(tls_url, topic, b"right", mech=mech, user="alice", password=PASSWORDS["alice"], ssl_domain=client_tls(pki))
    with pytest.raises(ConnectionException) as wrong:
        connect(tls_url, mech, "alice", "not-the-password", ssl_domain=client_tls(pki))
    assert "amqp:unauthorized-access" in str(wrong.value)
    with pytest.raises(ConnectionException):  # TLS is required: a client without it does not get in
        connect(bridge.url, mech, "alice", PASSWORDS["alice"])
    assert [r.value() for r in consume(kafka_bootstrap, topic, 1)] == [b"right"]
    metrics = metrics_of(bridge)
    assert "bridge_auth_failures_total 1.0" in metrics and "bridge_open_connections 0.0" in metrics
    log = bridge.log.read_text()
    assert "connection refused at SASL" in log
    assert PASSWORDS["alice"] not in log + metrics and "not-the-password" not in log + metrics
    assert not [pid for pid, cmdline in command_lines().items() if PASSWORDS["alice"] in cmdline]


def test_tls_and_scram_on_connections_the_supervisor_hands_to_workers(start_process, kafka_bootstrap, unique_name, sasldb, pki):
    """``--workers 2``: the supervisor passes the raw TCP socket on; TLS and SASL happen in the worker, as without workers."""
    bridge = start_process(
        workers=2, sasl_mechanisms=["SCRAM-SHA-256"], sasl_db_file=sasldb,
        tls_cert_file=pki.server_cert, tls_key_file=pki.server_key,
    )  # fmt: skip
    tls_url = bridge.url.replace("amqp://", "amqps://")
    topic = unique_name("workers-tls")
    conns = [connect(tls_url, "SCRAM-SHA-256", "alice", PASSWORDS["alice"], ssl_domain=client_tls(pki)) for _ in range(2)]
    try:
        for i, conn in enumerate(conns):
            conn.create_sender(topic).send(Message(body=f"{i}".encode(), inferred=True))
        for worker in (1, 2):  # one connection each: both workers did TLS and SCRAM
            with urllib.request.urlopen(f"http://127.0.0.1:{bridge.http_port + worker}/metrics", timeout=10) as resp:
                assert "bridge_open_connections 1.0" in resp.read().decode()
    finally:
        for conn in conns:
            conn.close()
    with pytest.raises(ConnectionException) as wrong:
        connect(tls_url, "SCRAM-SHA-256", "alice", "not-the-password", ssl_domain=client_tls(pki))
    assert "amqp:unauthorized-access" in str(wrong.value)
    with pytest.raises(ConnectionException):  # TLS is required
        connect(bridge.url, "SCRAM-SHA-256", "alice", PASSWORDS["alice"])
    assert sorted(r.value() for r in consume(kafka_bootstrap, topic, 2)) == [b"0", b"1"]
    assert "bridge_auth_failures_total 1.0" in metrics_of(bridge)


def test_plain_without_tls_only_when_allowed(start_process, unique_name, sasldb):
    from amqp_kafka_bridge import BridgeSettings
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="allow_plain_without_tls"):
        BridgeSettings.load(sasl_mechanisms=["PLAIN"], sasl_db_file=sasldb)
    bridge = start_process(sasl_mechanisms=["PLAIN"], sasl_db_file=sasldb, allow_plain_without_tls=True)
    send_one(bridge.url, unique_name("plain"), b"x", mech="PLAIN", user="bob", password=PASSWORDS["bob"])
    with pytest.raises(ConnectionException) as anonymous:
        connect(bridge.url, "ANONYMOUS")
    assert "unauthorized-access" in str(anonymous.value)


def test_external_with_client_certificates(start_process, kafka_bootstrap, unique_name, pki):
    topic = unique_name("external")
    subject = "CN=device-1,O=test"
    bridge = start_process(
        sasl_mechanisms=["EXTERNAL"], tls_cert_file=pki.server_cert, tls_key_file=pki.server_key, tls_ca_file=pki.ca,
        acl=[{"principal": subject, "produce": [topic], "create_topics": [topic]}],
    )  # fmt: skip
    url = bridge.url.replace("amqp://", "amqps://")
    conn = connect(url, "EXTERNAL", ssl_domain=client_tls(pki, pki.client_cert, pki.client_key))
    try:
        conn.create_sender(topic).send(Message(body=b"by certificate", inferred=True))
    finally:
        conn.close()
    assert [r.value() for r in consume(kafka_bootstrap, topic, 1)] == [b"by certificate"]
    with pytest.raises(ConnectionException):  # same subject, other CA: the TLS handshake fails
        connect(url, "EXTERNAL", ssl_domain=client_tls(pki, pki.other_client_cert, pki.other_client_key))
    with pytest.raises(ConnectionException):  # no certificate at all
        connect(url, "EXTERNAL", ssl_domain=client_tls(pki))


def end_offsets(bootstrap: str, topic: str, partitions: int = 1) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)]
    finally:
        consumer.close()


@pytest.fixture
def acl_bridge(start_process, sasldb) -> Iterator[Any]:
    yield start_process(
        sasl_mechanisms=["SCRAM-SHA-256"],
        sasl_db_file=sasldb,
        acl=[
            {"principal": "alice", "produce": ["sensors.*"]},
            {"principal": "bob", "consume": ["sensors.*"], "groups": ["analytics"]},
        ],
    )


def as_user(user: str) -> dict[str, str]:
    return {"mech": "SCRAM-SHA-256", "user": user, "password": PASSWORDS[user]}


def test_acl_rules(acl_bridge, kafka_bootstrap, unique_name):
    bridge = acl_bridge
    allowed, other = f"sensors.{unique_name('s')}", unique_name("plant")
    for topic in (allowed, other):
        create_topic(kafka_bootstrap, topic)
    send_one(bridge.url, allowed, b"reading", **as_user("alice"))

    refused = [
        ("alice", "send", other, None),
        ("alice", "receive", allowed, "analytics"),
        ("bob", "send", allowed, None),
        ("bob", "receive", allowed, "other-group"),
        ("bob", "receive", other, "analytics"),
    ]
    for user, action, topic, group in refused:
        conn = connect(bridge.url, **as_user(user))
        try:
            with pytest.raises(LinkDetached) as err:
                if action == "send":
                    conn.create_sender(topic).send(Message(body=b"must not arrive", inferred=True))
                else:
                    conn.create_receiver(f"{topic}/group.id/{group}").receive(timeout=10)
            assert "amqp:unauthorized-access" in str(err.value) and topic in str(err.value), (user, action, err.value)
        finally:
            conn.close()
    conn = connect(bridge.url, **as_user("bob"))
    try:
        got = conn.create_receiver(f"{allowed}/group.id/analytics", credit=10).receive(timeout=20)
        assert bytes(got.body) == b"reading"
    finally:
        conn.close()
    # refused attempts wrote nothing and committed nothing
    assert end_offsets(kafka_bootstrap, other) == [0] and end_offsets(kafka_bootstrap, allowed) == [1]
    assert committed(kafka_bootstrap, allowed, "other-group") < 0
    # nobody may create topics: a missing one stays missing
    missing = f"sensors.{unique_name('missing')}"
    conn = connect(bridge.url, **as_user("alice"))
    try:
        with pytest.raises(LinkDetached, match="amqp:not-found"):
            conn.create_sender(missing).send(Message(body=b"x", inferred=True))
    finally:
        conn.close()
    admin_topics = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "list"})
    try:
        assert missing not in admin_topics.list_topics(timeout=10).topics
    finally:
        admin_topics.close()
    metrics = metrics_of(bridge)
    assert 'bridge_unauthorized_attaches_total{direction="to-kafka"} 2.0' in metrics
    assert 'bridge_unauthorized_attaches_total{direction="to-amqp"} 3.0' in metrics


P, OFFSET = symbol("io.strimzi:partition-filter:int"), symbol("io.strimzi:offset-filter:long")


def receive_with(url: str, address: str, filters: dict[Any, Any], count: int) -> tuple[list[Message], dict[Any, Any]]:
    conn = connect(url)
    try:
        receiver = conn.create_receiver(address, credit=count, options=Filter(filters))
        echo = receiver.link.remote_source.filter
        echo.rewind()
        echoed = echo.get_object() if echo.next() else {}
        got = [receiver.receive(timeout=20) for _ in range(count)]
        for _ in got:
            receiver.accept()
        return got, echoed
    finally:
        conn.close()


def test_strimzi_filters_on_a_two_partition_topic(start_bridge, kafka_bootstrap, unique_name):
    bridge = start_bridge()
    topic = unique_name("strimzi")
    create_topic(kafka_bootstrap, topic, partitions=2)
    produce(kafka_bootstrap, topic, [{"value": f"p{p}-{i}".encode(), "partition": p} for p in (0, 1) for i in range(4)])

    got, echoed = receive_with(bridge.url, f"{topic}/group.id/{unique_name('g')}", {P: int32(1)}, 4)
    assert [bytes(m.body) for m in got] == [b"p1-0", b"p1-1", b"p1-2", b"p1-3"]
    assert {m.annotations["x-opt-bridge.partition"] for m in got} == {1}
    assert echoed == {P: 1} and type(echoed[P]) is int32

    got, echoed = receive_with(bridge.url, f"{topic}/group.id/{unique_name('g')}", {P: int32(1), OFFSET: 2}, 2)
    assert [bytes(m.body) for m in got] == [b"p1-2", b"p1-3"]
    assert echoed == {P: 1, OFFSET: 2}

    for filters, condition in [
        ({symbol("apache.org:selector-filter:string"): "a = 1"}, "amqp:not-implemented"),
        ({P: 1}, "io.strimzi:wrong-partition-filter"),
        ({OFFSET: 1}, "io.strimzi:no-partition-filter"),
    ]:
        with pytest.raises(LinkDetached, match=condition):
            receive_with(bridge.url, f"{topic}/group.id/{unique_name('g')}", filters, 1)
