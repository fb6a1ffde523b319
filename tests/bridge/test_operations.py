"""Operating the bridge: SASL PLAIN credentials, HTTP metrics/health, Kafka going away and coming back."""

from __future__ import annotations

import logging
import time
import urllib.request

import pytest
from amqp_kafka_bridge.logs import JsonFormatter
from proton import Message

from tests.bridge.clients import receive, send
from tests.bridge.helpers import consume

pytestmark = pytest.mark.integration


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_sasl_plain_credentials(start_bridge, kafka_bootstrap, unique_name, caplog):
    caplog.set_level(logging.INFO, logger="bridge")
    bridge = start_bridge(sasl_mechanisms=["PLAIN"], users={"alice": "s3cret-pw"})
    topic = unique_name("auth")
    ok = send(bridge.url, topic, [Message(body="hi")], user="alice", password="s3cret-pw")
    assert ok.outcomes == ["accepted"], ok
    wrong = send(bridge.url, topic, [Message(body="no")], user="alice", password="wrong", timeout=10)
    assert wrong.connection_error is not None and wrong.outcomes == [""]
    anonymous = send(bridge.url, topic, [Message(body="no")], timeout=10)
    assert anonymous.connection_error is not None and anonymous.outcomes == [""]
    got = receive(bridge.url, f"{topic}/group.id/a", 1, user="alice", password="s3cret-pw")
    assert [m.body for m in got.messages] == [b"hi"]
    assert [r.value() for r in consume(kafka_bootstrap, topic, 1)] == [b"hi"]
    assert "bridge_auth_failures_total 2.0" in bridge.metrics.render().decode()
    json_log = "\n".join(JsonFormatter().format(record) for record in caplog.records)  # with the extra fields
    assert "connection authenticated" in json_log and "s3cret-pw" not in json_log


def test_metrics_health_and_readiness(start_bridge, unique_name):
    bridge = start_bridge()
    port = bridge.http.port
    assert _get(port, "/healthz") == (200, "ok\n")
    assert _get(port, "/readyz")[0] == 200
    topic = unique_name("metrics")
    assert send(bridge.url, topic, [Message(body=b"x" * 10, inferred=True)] * 3).count("accepted") == 3
    status, text = _get(port, "/metrics")
    assert status == 200
    assert 'bridge_amqp_to_kafka_messages_total{link="' in text and f'topic="{topic}"}} 3.0' in text
    assert "bridge_amqp_to_kafka_bytes_total" in text and f'topic="{topic}"}} 30.0' in text
    assert "bridge_amqp_to_kafka_latency_seconds_count 3.0" in text
    assert _get(port, "/nope")[0] == 404


def test_kafka_down_releases_then_recovers(start_bridge, local_services, kafka_bootstrap, unique_name):
    if local_services is None:
        pytest.skip("needs the session's own Kafka to stop and start (AMQP_URL/KAFKA_BOOTSTRAP point elsewhere)")
    bridge = start_bridge(delivery_timeout_s=3.0)
    topic = unique_name("outage")
    assert send(bridge.url, topic, [Message(body=b"before", inferred=True)]).outcomes == ["accepted"]
    local_services.kafka.stop()
    try:
        started = time.monotonic()
        during = send(bridge.url, topic, [Message(body=b"during", inferred=True)], timeout=30)
        assert during.outcomes == ["modified"] and time.monotonic() - started < 15
        assert bridge.healthy()
        assert _get(bridge.http.port, "/readyz")[0] == 503
    finally:
        local_services.kafka.start()
        local_services.kafka.wait_ready()
    deadline = time.monotonic() + 60
    outcome = None
    while time.monotonic() < deadline and outcome != "accepted":  # each attempt is bounded by the delivery timeout
        outcome = send(bridge.url, topic, [Message(body=b"after", inferred=True)], timeout=30).outcomes[0]
    assert outcome == "accepted"
    assert b"after" in [r.value() for r in consume(kafka_bootstrap, topic, 3, timeout=10)]


def test_tls_listener(start_bridge, kafka_bootstrap, unique_name, tmp_path):
    import shutil
    import subprocess

    from proton import SSLDomain

    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    bridge = start_bridge(tls_cert_file=cert, tls_key_file=key)
    url = bridge.url.replace("amqp://", "amqps://")
    domain = SSLDomain(SSLDomain.MODE_CLIENT)
    domain.set_trusted_ca_db(str(cert))
    domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME, str(cert))
    topic = unique_name("tls")
    assert send(url, topic, [Message(body="secure")], ssl_domain=domain).outcomes == ["accepted"]
    plain = send(bridge.url, topic, [Message(body="plain")], timeout=10)
    assert plain.outcomes == [""] and plain.connection_error is not None
    assert [r.value() for r in consume(kafka_bootstrap, topic, 1)] == [b"secure"]
