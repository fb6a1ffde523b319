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

import pytest

from services.settings import free_port
from tests.demo.demo_run import PUBLISH_SECONDS, REPO_ROOT, WATERMARK_MS, WINDOW_MS, DemoRun, read_topic  # noqa: F401

JOB_START_SECONDS = 240  # Spark's first micro-batch can take minutes on a busy machine


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
        "--job-start-timeout", str(JOB_START_SECONDS),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        # A backstop only: the demo bounds its own waits (job start, then 90 s without progress).
        output, _ = proc.communicate(timeout=PUBLISH_SECONDS + JOB_START_SECONDS + 240)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the demo stops its children in order
        try:
            output, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        output += "\n[test: the demo did not finish in time and was stopped]"
    yield DemoRun(state_dir=state_dir, returncode=proc.returncode, output=output, seconds=time.monotonic() - started, **names)
