"""``amqp-kafka-bridge`` as a real process: SIGKILL mid-stream loses nothing accepted; SIGTERM drains and exits 0."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from proton import Delivery, Message
from proton.utils import BlockingConnection

from tests.bridge.clients import send
from tests.bridge.helpers import ROOT, BridgeProcess, consume, free_port, free_port_run, wait_ready

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


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()


@dataclass
class Workers:
    """``amqp-kafka-bridge --workers 2`` as a process group: the supervisor on ``http_port``, worker i on ``http_port + 1 + i``."""

    proc: subprocess.Popen[bytes]
    amqp_port: int
    http_port: int

    @property
    def url(self) -> str:
        return f"amqp://127.0.0.1:{self.amqp_port}"

    def worker_pid(self, index: int) -> int:
        """Worker ``index``'s process id, found by its command line (the supervisor passes ``--worker i``)."""
        wanted = ["--amqp-port", str(self.amqp_port), "--worker", str(index)]
        for entry in os.listdir("/proc"):
            try:
                args = Path(f"/proc/{entry}/cmdline").read_bytes().decode().split("\0")
            except (OSError, ValueError):
                continue
            if all(w in args for w in wanted) and args[args.index("--worker") + 1] == str(index):
                return int(entry)
        raise AssertionError(f"no worker {index}")

    def handed(self) -> list[float]:
        """The supervisor's count of open connections per worker."""
        text = _scrape(self.http_port)
        return [_value(text, f'bridge_worker_connections{{worker="{i}"}}') for i in range(2)]

    def open_per_worker(self) -> list[float]:
        """Each worker's own ``bridge_open_connections``."""
        return [_value(_scrape(self.http_port + 1 + i), "bridge_open_connections") for i in range(2)]


def _value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not in /metrics")


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` (a metric: the signal itself) until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def workers(kafka_bootstrap, tmp_path):
    amqp_port, http_port = free_port(), free_port_run(3)
    while amqp_port in range(http_port, http_port + 3):
        http_port = free_port_run(3)
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
        yield Workers(proc, amqp_port, http_port)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the supervisor and its workers
        proc.wait(10)


def test_workers_share_the_port_and_one_metrics_endpoint(workers, kafka_bootstrap, unique_name):
    topic = unique_name("workers")
    connections = [BlockingConnection(workers.url, timeout=10) for _ in range(4)]  # open together: two per worker
    for conn, connection in enumerate(connections):
        sender = connection.create_sender(topic)
        for i in range(4):
            assert sender.send(Message(body=f"{conn}-{i}".encode(), inferred=True)).remote_state == Delivery.ACCEPTED
    served = [f'topic="{topic}"' in _scrape(port) for port in (workers.http_port + 1, workers.http_port + 2)]
    assert served == [True, True]
    for connection in connections:
        connection.close()
    _until(lambda: workers.handed() == [0, 0], 10, "the connections' ends to reach the supervisor")
    combined = _scrape(workers.http_port)
    assert f'bridge_amqp_to_kafka_messages_total{{topic="{topic}"}} 16.0' in combined
    assert "bridge_open_connections 0.0" in combined and "process_resident_memory_bytes" in combined
    assert combined.count("bridge_build_info{") == 1
    assert len(consume(kafka_bootstrap, topic, 16)) == 16
    workers.proc.send_signal(signal.SIGTERM)
    assert workers.proc.wait(30) == 0


def test_workers_get_connections_by_load_and_a_killed_one_gets_none_until_restarted(workers):
    connections = [BlockingConnection(workers.url, timeout=10) for _ in range(4)]
    _until(lambda: sum(workers.open_per_worker()) == 4, 10, "four connections open")
    assert workers.open_per_worker() == [2, 2] and workers.handed() == [2, 2]

    # Ties go to the lowest index, so worker 0 has the first and the third; close them, open two more.
    for connection in (connections[0], connections[2]):
        connection.close()
    _until(lambda: workers.handed() == [0, 2], 10, "the supervisor to count worker 0's two connections gone")
    connections[0::2] = [BlockingConnection(workers.url, timeout=10) for _ in range(2)]
    _until(lambda: sum(workers.open_per_worker()) == 4, 10, "four connections open again")
    assert workers.open_per_worker() == [2, 2], "both new connections went to the least loaded worker"

    killed = workers.worker_pid(1)
    os.kill(killed, signal.SIGKILL)
    _until(lambda: workers.handed() == [2, 0], 10, "the supervisor to see worker 1 gone")
    more = [BlockingConnection(workers.url, timeout=10) for _ in range(2)]
    assert _value(_scrape(workers.http_port + 1), "bridge_open_connections") == 4, "worker 1 is down: the survivor takes them"

    wait_ready(workers.http_port, workers.proc, Path(os.devnull))  # ready again once the restarted worker 1 is
    assert workers.worker_pid(1) != killed
    more.append(BlockingConnection(workers.url, timeout=10))
    _until(lambda: workers.handed() == [4, 1], 10, "the next connection to go to the restarted worker")
    assert workers.open_per_worker() == [4, 1]
    for connection in [*connections[0::2], *more]:
        connection.close()
    for connection in connections[1::2]:  # they were on the killed worker
        with contextlib.suppress(Exception):
            connection.close()

    pids = [workers.worker_pid(0), workers.worker_pid(1)]
    workers.proc.kill()  # the supervisor alone: its workers see their channels end, drain and exit
    _until(lambda: not any(Path(f"/proc/{pid}/cmdline").exists() for pid in pids), 30, "orphaned workers to exit")
