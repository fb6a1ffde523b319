"""The simulators against the real Artemis and Kafka: what was accepted is what arrives."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from proton import Message

from simulators import receiver as receiver_cli
from simulators import temperature as temperature_cli
from simulators.feed import read_accepted_log
from simulators.messages import message_to_reading
from simulators.model import ModelConfig, TemperatureModel
from tests import amqp_clients
from tests.simulator_runs import temperature_args, temperature_command

pytestmark = pytest.mark.integration

N = 2000
START_MS = 1_764_370_000_000


def publish(address: str, log: Path, **connection: object) -> int:
    """N readings of 20 devices (seed 11), 5 % of them 4 s late, to ``url=...`` or ``kafka_bootstrap=...``."""
    argv = temperature_args(
        **connection, address=address, devices=20, rate=2000, count=N, seed=11, start_ms=START_MS,
        late_fraction=0.05, late_by=4, accepted_log=log, quiet=True,
    )  # fmt: skip
    return temperature_cli.main(argv)


def expected() -> list:
    config = ModelConfig(devices=20, rate=2000, seed=11, start_ms=START_MS, late_fraction=0.05, late_by_ms=4000)
    return TemperatureModel(config).take(N)


def test_publish_to_artemis_and_receive_what_was_accepted(
    amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address, log = unique_name("temperature"), tmp_path / "accepted.jsonl"
    assert publish(address, log, url=amqp_url) == 0
    accepted = read_accepted_log(log)
    assert sorted(accepted, key=lambda r: (r.ts, r.device_id)) == sorted(expected(), key=lambda r: (r.ts, r.device_id))
    messages = amqp_clients.receive(amqp_url, address, N, timeout=60)
    assert len(messages) == N
    m = messages[0]
    assert m.content_type == "application/json" and m.subject == m.properties["device_id"]
    received = [message_to_reading(m) for m in messages]
    # The broker keeps a sender's order on one queue: what arrives is what was accepted, in order.
    assert received == accepted


def test_publish_to_kafka_directly(kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path) -> None:
    topic, log = unique_name("temperature"), tmp_path / "accepted.jsonl"
    assert publish(topic, log, kafka_bootstrap=kafka_bootstrap) == 0
    accepted = read_accepted_log(log)
    assert len(accepted) == N
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": unique_name("g"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values, headers = [], None
    deadline = time.monotonic() + 60
    try:
        while len(values) < N and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            values.append(msg.value())
            assert msg.key().decode() == json.loads(msg.value())["device_id"]
            headers = dict(msg.headers())
    finally:
        consumer.close()
    assert sorted(values) == sorted(r.to_json().encode() for r in accepted)
    assert headers is not None and headers["content_type"] == b"application/json"


def test_receiver_prints_results_sent_to_artemis(amqp_url: str, unique_name: Callable[[str], str]) -> None:
    address = unique_name("max")
    results = [
        {
            "window_start": f"2025-11-28T22:46:{40 + 5 * i:02d}.000Z",
            "window_end": f"2025-11-28T22:46:{45 + 5 * i:02d}.000Z",
            "max_temperature": 21.5 + i,
            "device_id": f"device-{i}",
            "count": 10 * i,
        }
        for i in range(3)
    ]
    outcomes = amqp_clients.send(amqp_url, address, [Message(body=json.dumps(r).encode(), inferred=True) for r in results])
    assert outcomes["accepted"] == 3
    out = io.StringIO()
    assert receiver_cli.main(["--url", amqp_url, "--address", address, "--count", "3", "--timeout", "30", "--json"], out=out) == 0
    assert [json.loads(line) for line in out.getvalue().splitlines()] == results


def test_sigterm_stops_an_unbounded_publisher_cleanly(amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path) -> None:
    import os
    import signal
    import subprocess

    log = tmp_path / "accepted.jsonl"
    proc = subprocess.Popen(
        temperature_command(url=amqp_url, address=unique_name("temperature"), rate=500, accepted_log=log),
        cwd=Path(__file__).resolve().parents[2],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 100):
            threading.Event().wait(0.05)  # polling a file with a deadline; the signal is the file content
        assert len(log.read_text().splitlines()) >= 100
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "accepted" in err  # the final progress line
    lines = log.read_text().splitlines()
    assert all(json.loads(line)["device_id"].startswith("device-") for line in lines)
