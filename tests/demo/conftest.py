"""One demo run for the whole session, on the session's services with names of its own.

``python -m demo`` runs as a subprocess for a bounded time with a fixed seed; its
accepted log, AMQP results and Kafka topics are then checked by the end-to-end test and
read by the notebook test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from demo.settings import DemoSettings
from services.settings import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PUBLISH_SECONDS = 30
WINDOW_MS = 5000
WATERMARK_MS = 10_000


@dataclass(frozen=True)
class DemoRun:
    """What one demo run left behind and printed."""

    state_dir: Path
    temperature_address: str
    max_address: str
    temperature_topic: str
    max_topic: str
    returncode: int
    output: str
    seconds: float

    @property
    def accepted_log(self) -> Path:
        return DemoSettings(state_dir=self.state_dir).accepted_log

    @property
    def amqp_results(self) -> Path:
        return DemoSettings(state_dir=self.state_dir).amqp_results


@pytest.fixture(scope="session")
def demo_run(amqp_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    tag = uuid.uuid4().hex[:8]
    names = {
        "temperature_address": f"demo-temperature-{tag}",
        "max_address": f"demo-max-{tag}",
        "temperature_topic": f"demo-temperature-{tag}",
        "max_topic": f"demo-max-{tag}",
    }
    state_dir = tmp_path_factory.mktemp("demo")
    cmd = [
        sys.executable, "-m", "demo", "--duration", str(PUBLISH_SECONDS), "--seed", "7",
        "--amqp-url", amqp_url, "--kafka-bootstrap", kafka_bootstrap,
        "--temperature-address", names["temperature_address"], "--max-address", names["max_address"],
        "--temperature-topic", names["temperature_topic"], "--max-topic", names["max_topic"],
        "--bridge-http-port", str(free_port()), "--state-dir", str(state_dir), "--drain-timeout", "90",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=PUBLISH_SECONDS + 180)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the demo stops its children in order
        try:
            output, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        output += "\n[test: the demo did not finish in time and was stopped]"
    yield DemoRun(state_dir=state_dir, returncode=proc.returncode, output=output, seconds=time.monotonic() - started, **names)


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[bytes]:
    """Every value in ``topic`` up to the end offsets it had when called (deadline ``timeout``)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex}", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        ends: dict[int, int] = {}
        assignment = []
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high > low:
                ends[p] = high
                assignment.append(TopicPartition(topic, p, low))
        consumer.assign(assignment)
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            values.append(msg.value())
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
        assert not ends, f"timed out reading {topic} to its end"
        return values
    finally:
        consumer.close()
