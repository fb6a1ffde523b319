"""The AMQP publisher and receiver against an in-process fake peer (no broker needed).

The fake peer releases or rejects chosen deliveries so the at-least-once
paths (resend on released, count rejected) run for real over a socket.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from proton import Message

from simulators import receiver as receiver_cli
from simulators import temperature as temperature_cli
from simulators.amqp_publisher import AmqpPublisher, publish_amqp
from simulators.feed import AcceptedLog, ReadingFeed, read_accepted_log
from simulators.model import ModelConfig, Reading, TemperatureModel
from simulators.pacing import Pacer
from tests.simulator_runs import temperature_args
from tests.simulators.fake_peer import FakePeer

pytestmark = pytest.mark.unit


@pytest.fixture
def peer_factory() -> Iterator[list[FakePeer]]:
    peers: list[FakePeer] = []
    yield peers
    for p in peers:
        p.close()


def start_peer(peers: list[FakePeer], **kw: object) -> FakePeer:
    peer = FakePeer(**kw).start()  # type: ignore[arg-type]
    peers.append(peer)
    return peer


def feed(count: int, seed: int = 1) -> ReadingFeed:
    model = TemperatureModel(ModelConfig(devices=7, rate=5000.0, seed=seed, start_ms=1_764_370_000_000))
    return ReadingFeed(model, Pacer(5000.0, time.monotonic(), limit=count))


def test_released_deliveries_are_resent_until_accepted(peer_factory: list[FakePeer]) -> None:
    peer = start_peer(peer_factory, policy=lambda i, m: "release" if i % 4 == 0 else "accept")
    accepted: list[Reading] = []
    pub = AmqpPublisher(peer.url, "temperature", feed(200), accepted.append, drain_timeout=20)
    stats = publish_amqp(pub)
    assert pub.error is None
    assert stats.accepted == 200 and stats.resent == len(peer.received) - 200 > 0
    expected = feed(200).model.take(200)
    assert sorted(accepted, key=expected.index) == expected
    assert [Reading.from_json(bytes(m.body)) for m in peer.accepted] == accepted


def test_rejected_deliveries_are_counted_not_resent(peer_factory: list[FakePeer]) -> None:
    peer = start_peer(peer_factory, policy=lambda i, m: "reject" if i < 3 else "accept")
    pub = AmqpPublisher(peer.url, "temperature", feed(20), drain_timeout=20)
    stats = publish_amqp(pub)
    assert (stats.sent, stats.accepted, stats.rejected, stats.in_flight()) == (20, 17, 3, 0)


def test_cli_writes_the_accepted_log_and_exits_zero(peer_factory: list[FakePeer], tmp_path: Path) -> None:
    peer = start_peer(peer_factory, policy=lambda i, m: "release" if i == 5 else "accept")
    log = tmp_path / "accepted.jsonl"
    argv = temperature_args(
        url=peer.url, address="temperature", devices=5, rate=2000, count=300, seed=9, start_ms=1764370000000,
        late_fraction=0.1, late_by=3, accepted_log=log, quiet=True,
    )  # fmt: skip
    assert temperature_cli.main(argv) == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 300 and all(json.loads(line).keys() == {"device_id", "temperature", "ts"} for line in lines)
    # Same seed and start, same readings: the log is reproducible (modulo acceptance order).
    expected = TemperatureModel(
        ModelConfig(devices=5, rate=2000, seed=9, start_ms=1764370000000, late_fraction=0.1, late_by_ms=3000)
    ).take(300)
    assert sorted(read_accepted_log(log), key=expected.index) == expected
    assert sorted((Reading.from_json(bytes(m.body)) for m in peer.accepted), key=expected.index) == expected


def test_cli_duration_bounds_the_run(peer_factory: list[FakePeer]) -> None:
    peer = start_peer(peer_factory)
    started = time.monotonic()
    assert temperature_cli.main(temperature_args(url=peer.url, rate=100, duration=0.5, quiet=True)) == 0
    assert time.monotonic() - started < 10
    assert 45 <= len(peer.accepted) <= 50


def test_publisher_gives_up_after_drain_timeout_without_a_peer() -> None:
    from tests.simulators.fake_peer import free_port

    pub = AmqpPublisher(f"amqp://127.0.0.1:{free_port()}", "temperature", feed(5), drain_timeout=0.5)
    started = time.monotonic()
    stats = publish_amqp(pub)
    assert time.monotonic() - started < 10
    assert stats.accepted == 0 and pub.error and "not accepted" in pub.error


def result(i: int) -> dict[str, object]:
    return {
        "window_start": f"2025-11-28T22:46:{40 + 5 * i:02d}.000Z",
        "window_end": f"2025-11-28T22:46:{45 + 5 * i:02d}.000Z",
        "max_temperature": 20.5 + i,
        "device_id": f"device-{i}",
        "count": 100 + i,
    }


def test_receiver_prints_a_table_and_stops_at_count(peer_factory: list[FakePeer]) -> None:
    peer = start_peer(peer_factory)
    peer.offer([Message(body=json.dumps(result(i))) for i in range(3)])  # amqp-value strings, like a string sink
    out = io.StringIO()
    assert receiver_cli.main(["--url", peer.url, "--address", "max", "--count", "3", "--timeout", "20"], out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split()[0] == "window_start" and len(lines) == 5
    assert lines[2].split() == ["2025-11-28T22:46:40.000Z", "2025-11-28T22:46:45.000Z", "20.50", "device-0", "100"]


def test_receiver_json_mode_and_timeout(peer_factory: list[FakePeer]) -> None:
    peer = start_peer(peer_factory)
    peer.offer([Message(body=json.dumps(result(0)).encode(), inferred=True)])
    out = io.StringIO()
    started = time.monotonic()
    # Asks for 2, gets 1: stops at the timeout and reports the shortfall.
    assert receiver_cli.main(["--url", peer.url, "--count", "2", "--timeout", "1", "--json"], out=out) == 1
    assert time.monotonic() - started < 10
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [result(0)]


def test_accepted_log_ignores_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AcceptedLog(path) as log:
        log.write(Reading("device-1", 20.0, 1))
    with open(path, "a") as f:
        f.write('{"device_id": "dev')
    assert read_accepted_log(path) == [Reading("device-1", 20.0, 1)]


def test_receiver_rejects_and_counts_bodies_off_the_contract(peer_factory: list[FakePeer]) -> None:
    peer = start_peer(peer_factory)
    peer.offer([Message(body="not json") for _ in range(5)] + [Message(body=json.dumps(result(0)))])
    out = io.StringIO()
    assert receiver_cli.main(["--url", peer.url, "--count", "1", "--timeout", "20", "--json"], out=out) == 0
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [result(0)]
