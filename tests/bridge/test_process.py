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


def _free_port_run(count: int) -> int:
    """A port P such that P .. P + count - 1 are all free (the supervisor serves HTTP on P, worker i on P + 1 + i)."""
    import socket

    while True:
        first = free_port()
        probes = [socket.socket() for _ in range(count - 1)]
        try:
            for offset, probe in enumerate(probes, 1):
                probe.bind(("127.0.0.1", first + offset))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return first


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def test_workers_share_the_port_and_one_metrics_endpoint(kafka_bootstrap, unique_name, tmp_path):
    amqp_port, http_port = free_port(), _free_port_run(3)
    while amqp_port in range(http_port, http_port + 3):
        http_port = _free_port_run(3)
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
        wait_ready(http_port, proc, log)  # the supervisor is ready once every worker is
        topic = unique_name("workers")
        for conn in range(16):  # the kernel spreads connections over the workers by their 4-tuple
            assert send(f"amqp://127.0.0.1:{amqp_port}", topic, [Message(body=f"{conn}".encode(), inferred=True)]).outcomes == [
                "accepted"
            ]
        served = [f'topic="{topic}"' in _scrape(port) for port in (http_port + 1, http_port + 2)]
        assert served == [True, True]
        combined = _scrape(http_port)
        assert f'bridge_amqp_to_kafka_messages_total{{topic="{topic}"}} 16.0' in combined
        assert "bridge_open_connections 0.0" in combined and "process_resident_memory_bytes" in combined
        assert combined.count("bridge_build_info{") == 1
        assert len(consume(kafka_bootstrap, topic, 16)) == 16
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the supervisor and its workers
        proc.wait(10)
