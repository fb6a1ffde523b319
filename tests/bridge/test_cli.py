"""The command line: --print-config (secrets masked), --log-format, worker restart backoff. No services needed."""

from __future__ import annotations

import json
import logging

import pytest
from amqp_kafka_bridge.__main__ import main
from amqp_kafka_bridge.logs import configure
from amqp_kafka_bridge.supervisor import restart_delay

pytestmark = pytest.mark.unit


def test_print_config_shows_the_effective_settings_with_secrets_masked(monkeypatch, capsys):
    monkeypatch.setenv("BRIDGE_KAFKA_PRODUCER__SASL_PASSWORD", "kafka-pw-31")
    monkeypatch.setenv("BRIDGE_TLS_KEY_PASSWORD", "key-pw-32")
    assert main(["--print-config", "--amqp-port", "6111", "--log-format", "text"]) == 0
    out = capsys.readouterr().out
    config = json.loads(out)
    assert config["amqp_port"] == 6111 and config["log_format"] == "text"
    assert config["kafka_producer"]["sasl.password"] == "***"
    assert "kafka-pw-31" not in out and "key-pw-32" not in out


def test_text_log_format(capsys):
    configure("INFO", "text")
    try:
        logging.getLogger("bridge.test").info("hello", extra={"topic": "t1"})
        err = capsys.readouterr().err
        assert "INFO    bridge.test: hello topic=t1" in err and not err.lstrip().startswith("{")
    finally:
        configure("INFO", "json")


def test_worker_restarts_back_off_exponentially_up_to_a_cap():
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert restart_delay(20) == 30.0


def test_every_setting_has_a_flag_with_its_default_and_environment_name(capsys):
    from amqp_kafka_bridge.settings import BridgeSettings

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in BridgeSettings.model_fields:
        assert f"--{name.replace('_', '-')}" in text, name
        assert f"BRIDGE_{name.upper()}" in text, name
    assert "(default: 5673; env: BRIDGE_AMQP_PORT)" in text


def test_flags_reach_lists_maps_and_booleans(capsys):
    assert (
        main(
            [
                "--print-config", "--no-auto-create-topics", "--sasl-mechanisms", "ANONYMOUS,SCRAM-SHA-256",
                "--sasl-config-dir", "/etc/sasl2", "--kafka-common", '{"security.protocol": "SASL_SSL"}',
                "--broker-url", "amqp://a", "--broker-url", "amqp://b",
            ]
        )
        == 0
    )  # fmt: skip
    config = json.loads(capsys.readouterr().out)
    assert config["auto_create_topics"] is False
    assert config["sasl_mechanisms"] == ["ANONYMOUS", "SCRAM-SHA-256"]
    assert config["kafka_common"] == {"security.protocol": "SASL_SSL"}
    assert config["broker_urls"] == ["amqp://a", "amqp://b"]
