"""The command lines and environment of the demo's children (bridge, job, simulator, receiver)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from demo.settings import REPO_ROOT, DemoSettings


def child_env() -> dict[str, str]:
    """This environment plus what every child needs: the repo importable, Spark on loopback with this Python."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), path) if p)
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spark_submit() -> str:
    """The pyspark wheel's ``spark-submit`` beside this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "spark-submit"
    if beside.exists():
        return str(beside)
    found = shutil.which("spark-submit")
    if found is None:
        raise FileNotFoundError("spark-submit not found: run `make setup` (the pyspark wheel provides it)")
    return found


def bridge_cmd(s: DemoSettings, amqp_url: str, kafka_bootstrap: str, routes_file: Path) -> list[str]:
    return [
        sys.executable, "-m", "amqp_kafka_bridge", "--mode", "forwarder",
        "--broker-url", amqp_url, "--kafka-bootstrap", kafka_bootstrap,
        "--routes-file", str(routes_file), "--key-property", "device_id",
        "--http-host", "127.0.0.1", "--http-port", str(s.bridge_http_port),
    ]  # fmt: skip


def routes_yaml(s: DemoSettings) -> str:
    """The forwarder's routes file: the bridge's queue of the readings -> Kafka topic."""
    return f'routes:\n  - address: "{s.bridge_queue}"\n    topic: "{s.temperature_topic}"\n    direction: to-kafka\n'


def job_cmd(s: DemoSettings, amqp_url: str, kafka_bootstrap: str, jars: list[str]) -> list[str]:
    return [
        spark_submit(), "--master", "local[2]", "--name", "windowed-max-demo",
        "--conf", "spark.ui.enabled=false", "--conf", "spark.log.level=WARN",
        "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--jars", ",".join(jars),
        str(REPO_ROOT / "jobs" / "windowed_max.py"),
        "--amqp-url", amqp_url, "--source-address", s.spark_queue, "--sink-address", s.max_address,
        "--kafka-bootstrap", kafka_bootstrap, "--kafka-topic", s.max_topic,
        "--checkpoint-dir", str(s.state_dir / "checkpoint"), "--log-dir", str(s.state_dir / "amqp-log"),
        "--window", f"{s.window_s} seconds", "--watermark", f"{s.watermark_s} seconds",
    ]  # fmt: skip


def simulator_cmd(s: DemoSettings, amqp_url: str) -> list[str]:
    cmd = [
        sys.executable, "-m", "simulators.temperature", "--url", amqp_url, "--address", s.publish_address,
        "--devices", str(s.devices), "--rate", str(s.rate), "--seed", str(s.seed),
        "--spike-fraction", str(s.spike_fraction),
        "--accepted-log", str(s.accepted_log),
    ]  # fmt: skip
    if s.duration is not None:
        cmd += ["--duration", str(s.duration)]
    return cmd


def receiver_cmd(s: DemoSettings, amqp_url: str) -> list[str]:
    return [sys.executable, "-m", "simulators.receiver", "--url", amqp_url, "--address", s.max_address, "--json"]
