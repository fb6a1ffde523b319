"""The amqp source and sink over TLS (a test CA) with SASL PLAIN, against a real Artemis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from proton import Message

from services.artemis import ArtemisService
from services.settings import free_port
from tests import amqp_clients
from tests.security.brokers import private_broker
from tests.security.certificates import TestPki, make_pki
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ArtemisService, TestPki]]:
    root = tmp_path_factory.mktemp("tls")
    pki = make_pki(root / "pki")
    tls = {"amqps_port": free_port(), "tls_keystore": pki.server_p12, "tls_keystore_password": pki.p12_password}
    with private_broker(root / "run", **tls) as broker:
        yield broker, pki


def test_source_and_sink_over_tls_with_sasl_plain(spark, tls_broker: tuple[ArtemisService, TestPki], tmp_path: Path) -> None:
    broker, pki = tls_broker
    assert broker.tls_url is not None
    # The host name is checked against the certificate; proton matches DNS names, so use one.
    tls_url = broker.tls_url.replace("127.0.0.1", "localhost")
    # Plain clients prove the broker side: messages in over the plain port, out over TLS below.
    amqp_clients.send(broker.url, "secure-in", [Message(id=f"m-{i}", body=f"{i}") for i in range(300)])
    df = (
        spark.readStream.format("amqp").option("url", tls_url).option("address", "secure-in")
        .option("user", "admin").option("password", "admin").option("saslMechanisms", "PLAIN")
        .option("sslCaFile", str(pki.ca_cert)).option("logDir", str(tmp_path / "log")).load()
        .selectExpr("body", "message_id")
    )  # fmt: skip
    query = (
        df.writeStream.format("amqp").option("url", tls_url).option("address", "secure-out")
        .option("user", "admin").option("password", "admin").option("sslCaFile", str(pki.ca_cert))
        .option("checkpointLocation", str(tmp_path / "ckpt")).start()
    )  # fmt: skip
    try:
        got = amqp_clients.receive(broker.url, "secure-out", 300, timeout=90)
    finally:
        query.stop()
    assert sorted(m.id for m in got) == sorted(f"m-{i}" for i in range(300))


def test_untrusted_certificate_is_refused(spark, tls_broker: tuple[ArtemisService, TestPki], tmp_path: Path) -> None:
    broker, _ = tls_broker
    other = make_pki(tmp_path / "other-ca")  # a CA that did not sign the broker's certificate
    df = (
        spark.readStream.format("amqp").option("url", broker.tls_url.replace("127.0.0.1", "localhost")).option("address", "secure-x")
        .option("sslCaFile", str(other.ca_cert)).option("startTimeout", "5").option("logDir", str(tmp_path / "log")).load()
    )  # fmt: skip
    query = df.writeStream.format("noop").option("checkpointLocation", str(tmp_path / "c")).start()
    with pytest.raises(Exception, match="could not attach a receiver.*(certificate|SSL|TLS|ssl)"):
        query.awaitTermination(60)
    wait_for(lambda: not query.isActive, 10, "the query to stop")
