"""The service contract on the chosen broker: a second private instance starts, answers AMQP, and leaves nothing when stopped."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from services.process import ServiceError, port_in_use
from services.settings import ServiceSettings
from services.stack import make_broker


@pytest.mark.integration
def test_a_private_instance_starts_answers_and_leaves_nothing(broker_name: str, tmp_path: Path) -> None:
    from services.fetch import fetch_all

    settings = replace(ServiceSettings.from_env().with_free_ports(tmp_path), broker=broker_name)
    parts = fetch_all(settings)
    broker = make_broker(settings, parts.artemis_home, parts.activemq_home)
    broker.start()
    try:
        broker.wait_ready(120)
        pid = broker.process.pid
        assert pid is not None and broker.ready()
        assert broker.process.log_file.parent == tmp_path  # pid and log under the run folder
    finally:
        broker.stop()
    assert broker.process.pid is None and not broker.process.pid_file.exists()
    assert not port_in_use(settings.host, settings.amqp_port)
    if broker_name == "rabbitmq":  # its private epmd and distribution port go too
        assert not port_in_use("127.0.0.1", settings.rabbitmq_epmd_port)
        assert not port_in_use(settings.host, settings.rabbitmq_dist_port)


@pytest.mark.unit
def test_a_missing_rabbitmq_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from services import rabbitmq

    monkeypatch.setattr(rabbitmq, "RABBITMQ_LIB", tmp_path / "no-rabbitmq")
    monkeypatch.setattr(rabbitmq.os, "geteuid", lambda: 1000)  # not root: nothing is installed, the error says how
    with pytest.raises(ServiceError, match="apt-get install .*rabbitmq-server"):
        rabbitmq.ensure_installed()


@pytest.mark.unit
def test_an_unknown_broker_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER", "qpidd")
    with pytest.raises(SystemExit, match="BROKER='qpidd' is not a known broker: choose one of artemis, activemq, rabbitmq"):
        ServiceSettings.from_env()


@pytest.mark.integration
def test_tls_listener_with_the_pkcs12_key_store(broker_name: str, tmp_path: Path) -> None:
    """``AMQPS_PORT`` + a PKCS#12 key store give each broker an amqps listener that a verifying client trusts."""
    from proton import Message, SSLDomain
    from proton.utils import BlockingConnection

    from services.fetch import fetch_all
    from services.settings import free_port
    from tests.security.certificates import make_pki

    pki = make_pki(tmp_path / "pki")
    settings = replace(
        ServiceSettings.from_env().with_free_ports(tmp_path / "run"),
        broker=broker_name,
        amqps_port=free_port(),
        tls_keystore=pki.server_p12,
        tls_keystore_password=pki.p12_password,
    )
    parts = fetch_all(settings)
    broker = make_broker(settings, parts.artemis_home, parts.activemq_home)
    broker.start()
    try:
        broker.wait_ready(120)
        domain = SSLDomain(SSLDomain.MODE_CLIENT)
        domain.set_trusted_ca_db(str(pki.ca_cert))
        domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
        assert broker.tls_url is not None
        # The host name is checked against the certificate; proton matches DNS names, so use one.
        connection = BlockingConnection(broker.tls_url.replace("127.0.0.1", "localhost"), timeout=30, ssl_domain=domain)
        try:
            connection.create_sender("tls-check").send(Message(body="over tls", durable=True))
            received = connection.create_receiver("tls-check", credit=1).receive(timeout=30)
            assert received.body == "over tls"
        finally:
            connection.close()
    finally:
        broker.stop()
