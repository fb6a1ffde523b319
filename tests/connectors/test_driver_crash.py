"""Kill the Spark driver (SIGKILL) mid-stream, restart it from its checkpoint: nothing lost, nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from proton import Message

from services.settings import PROJECT_ROOT
from tests import amqp_clients
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

DEVICES = 10


def _messages(start: int, n: int) -> list[Message]:
    return [
        Message(body=f"reading {i}", properties={"device_id": f"d{i % DEVICES}"}, durable=True) for i in range(start, start + n)
    ]


def _driver(amqp_url: str, address: str, state: Path) -> subprocess.Popen:
    log = open(state / "driver.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
    return subprocess.Popen(
        [sys.executable, "-m", "tests.connectors.counting_driver", amqp_url, address, str(state)],
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        start_new_session=True,  # SIGKILL reaches the JVM, its Python workers and the ingest process
    )


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def test_driver_killed_mid_stream_loses_and_repeats_nothing(
    amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address = unique_name("crash")
    first, second = 20_000, 10_000
    assert amqp_clients.send(amqp_url, address, _messages(0, first), timeout=120)["accepted"] == first

    driver = _driver(amqp_url, address, tmp_path)
    try:
        wait_for(lambda: sum(_read(tmp_path / "counts.json").values()) >= 4000, 120, "the first batches before the crash")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(30)
    counted_before = sum(_read(tmp_path / "counts.json").values())
    assert counted_before < first, "the crash must come mid-stream"

    # More arrive while the driver is down; the broker keeps them.
    assert amqp_clients.send(amqp_url, address, _messages(first, second), timeout=120)["accepted"] == second
    driver = _driver(amqp_url, address, tmp_path)
    try:
        total = first + second

        def caught_up() -> bool:
            progress = _read(tmp_path / "progress.json")
            return (
                sum(_read(tmp_path / "counts.json").values()) >= total
                and bool(progress)
                and progress["latest"] == progress["end"]
            )

        wait_for(caught_up, 180, f"all {total} messages counted after the restart (log: {tmp_path / 'driver.log'})")
    finally:
        os.killpg(driver.pid, signal.SIGTERM)
        driver.wait(60)
    counts = _read(tmp_path / "counts.json")
    assert counts == {f"d{d}": total // DEVICES for d in range(DEVICES)}
    assert amqp_clients.receive(amqp_url, address, 1, timeout=1.5) == []  # all accepted, none left behind
