"""``amqp-kafka-bridge`` as a real process: SIGKILL mid-stream loses nothing accepted; SIGTERM drains and exits 0."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from proton import Message

from tests.bridge.clients import send
from tests.bridge.helpers import ROOT, BridgeProcess, consume, free_port, wait_ready

pytestmark = pytest.mark.integration


@pytest.fixture
def bridge_process(kafka_bootstrap, tmp_path):
    procs: list[BridgeProcess] = []

    def make() -> BridgeProcess:
        proc = BridgeProcess(kafka_bootstrap, tmp_path / "bridge.log")
        procs.append(proc)
        return proc

    yield make
    for proc in procs:
        proc.stop()


def test_sigkill_mid_stream_loses_no_accepted_message(bridge_process, kafka_bootstrap, unique_name):
    total, kill_at = 20_000, 7_000
    topic = unique_name("kill")
    bridge = bridge_process()
    bridge.start()
    messages = [Message(body=f"{i}".encode(), inferred=True) for i in range(total)]

    def kill_midway(settled: int) -> None:
        if settled == kill_at:
            bridge.signal(signal.SIGKILL)

    first = send(bridge.url, topic, messages, timeout=120, on_settled=kill_midway)
    accepted = {i for i, outcome in enumerate(first.outcomes) if outcome == "accepted"}
    assert kill_at <= len(accepted) < total, "the bridge died before the sender finished"
    assert bridge.wait(10) == -signal.SIGKILL

    bridge.start()  # same ports; the sender resends what it never saw accepted
    missing = [i for i in range(total) if i not in accepted]
    second = send(bridge.url, topic, [messages[i] for i in missing], timeout=120)
    assert second.outcomes == ["accepted"] * len(missing)

    records = consume(kafka_bootstrap, topic, 2 * total, timeout=30, until=lambda got: len({r.value() for r in got}) >= total)
    in_kafka = {int(r.value()) for r in records}
    assert accepted <= in_kafka, f"{len(accepted - in_kafka)} accepted messages are not in Kafka"
    assert in_kafka == set(range(total))


def test_sigterm_drains_in_flight_and_exits_cleanly(bridge_process, kafka_bootstrap, unique_name):
    topic = unique_name("term")
    bridge = bridge_process()
    bridge.start()
    messages = [Message(body=f"{i}".encode(), inferred=True) for i in range(5_000)]

    def term_midway(settled: int) -> None:
        if settled == 1_000:
            bridge.signal(signal.SIGTERM)

    result = send(bridge.url, topic, messages, timeout=60, on_settled=term_midway)
    assert bridge.wait(30) == 0
    accepted = {i for i, outcome in enumerate(result.outcomes) if outcome == "accepted"}
    assert len(accepted) >= 1_000
    assert all(outcome in ("accepted", "") for outcome in result.outcomes), "drain must not release or reject"
    in_kafka = {int(r.value()) for r in consume(kafka_bootstrap, topic, len(accepted), timeout=20)}
    assert accepted <= in_kafka


def _free_port_pair() -> int:
    """A port P such that P and P + 1 are both free (worker N serves HTTP on P + N)."""
    import socket

    while True:
        first = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", first + 1))
            except OSError:
                continue
        return first


def test_workers_share_the_port(kafka_bootstrap, unique_name, tmp_path):
    amqp_port, http_port = free_port(), _free_port_pair()
    while amqp_port in (http_port, http_port + 1):
        http_port = _free_port_pair()
    cmd = [
        sys.executable,
        "-m",
        "amqp_kafka_bridge",
        "--workers",
        "2",
        "--amqp-port",
        str(amqp_port),
        "--http-port",
        str(http_port),
        "--kafka-bootstrap",
        kafka_bootstrap,
    ]
    log = tmp_path / "workers.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=out, stderr=out, start_new_session=True
        )
    try:
        for port in (http_port, http_port + 1):
            wait_ready(port, proc, log)
        topic = unique_name("workers")
        for conn in range(16):  # the kernel spreads connections over the workers by their 4-tuple
            assert send(f"amqp://127.0.0.1:{amqp_port}", topic, [Message(body=f"{conn}".encode(), inferred=True)]).outcomes == [
                "accepted"
            ]
        served = []
        for port in (http_port, http_port + 1):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                served.append(f'topic="{topic}"' in resp.read().decode())
        assert served == [True, True]
        assert len(consume(kafka_bootstrap, topic, 16)) == 16
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the supervisor and its workers
        proc.wait(10)
