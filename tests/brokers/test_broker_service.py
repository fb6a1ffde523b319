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
