"""The demo job on a real Spark standalone cluster: ``spark-submit --master spark://... --py-files <archive>``.

The master and a 1-core worker come from the installed pyspark (:mod:`deploy.standalone`);
the worker has no ``PYTHONPATH``, so the executors import ``connectors`` and ``jobs`` only from
the archive :mod:`deploy.package` builds. The simulator publishes a seeded, bounded set of
readings; every window the job emits on AMQP and Kafka is checked against the plain-Python
recomputation of the accepted readings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy import package
from deploy.standalone import StandaloneCluster, spark_script
from simulators.feed import read_accepted_log
from simulators.messages import message_to_json
from tests import amqp_clients
from tests.jobs.oracle import expected_windows
from tests.kafka_clients import consume as _consume_records
from tests.simulator_runs import temperature_command
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(360)]

REPO_ROOT = Path(__file__).resolve().parents[2]
START_MS = 1_764_370_000_000  # aligned to 5 s windows
WATERMARK_MS = 10_000


def publish(amqp_url: str, address: str, accepted_log: Path) -> list:
    """4000 readings of 10 devices over 20 s of event time (sent in 2 s), 5 % of them 4 s late."""
    cmd = temperature_command(
        url=amqp_url, address=address, devices=10, rate=2000, time_scale=10, count=4000, seed=11,
        start_ms=START_MS, late_fraction=0.05, late_by=4, accepted_log=accepted_log, quiet=True,
    )  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    return read_accepted_log(accepted_log)




def stop_submit(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    """Ctrl-C the spark-submit process group (the job stops its queries), SIGKILL if it hangs."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait(10)
    return proc.returncode


def test_windowed_max_on_a_standalone_cluster(
    amqp_url: str, kafka_bootstrap: str, unique_name: Callable[[str], str], spark_kafka_jars: tuple[Path, ...], tmp_path: Path
) -> None:
    source, sink, topic = unique_name("temperature"), unique_name("max"), unique_name("max")
    archive = package.build(tmp_path / "amqp_spark_kafka.zip")
    accepted = publish(amqp_url, source, tmp_path / "accepted.jsonl")
    assert len(accepted) == 4000
    expected = expected_windows(accepted, 5000, closed_before_ms=max(r.ts for r in accepted) - WATERMARK_MS)
    assert len(expected) == 2  # [-5 s, 0) from the first late readings, then [0, 5 s); the rest stay open

    # PYTHONPATH=<archive> for the driver: Spark 4.2 plans a Python streaming source in a Python
    # process the driver JVM starts without the --py-files (see docs/deployment.md); the executors
    # (worker started without PYTHONPATH) get the archive from --py-files only.
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(archive)}
    with StandaloneCluster.on_free_ports(tmp_path / "spark", worker_cores=1, worker_memory="1g") as cluster:
        cmd = [
            spark_script("spark-submit"), "--master", cluster.master_url, "--deploy-mode", "client",
            "--name", "windowed-max-cluster-test", "--driver-memory", "512m",
            "--conf", "spark.executor.memory=512m", "--conf", "spark.cores.max=1", "--conf", "spark.ui.enabled=false",
            "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1",
            "--py-files", str(archive), "--jars", ",".join(str(j) for j in spark_kafka_jars),
            str(REPO_ROOT / "jobs" / "windowed_max.py"),
            "--amqp-url", amqp_url, "--source-address", source, "--sink-address", sink,
            "--kafka-bootstrap", kafka_bootstrap, "--kafka-topic", topic,
            "--checkpoint-dir", str(tmp_path / "checkpoint"), "--log-dir", str(tmp_path / "amqp-log"),
            "--trigger-interval", "1 second", "--timeout", "240",
        ]  # fmt: skip
        log_path = tmp_path / "spark-submit.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def submit_log() -> str:
            return "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])

        try:
            # The distributed path: the master lists the application with the worker's core.
            apps = wait_for(
                lambda: proc.poll() is not None or [a for a in cluster.applications() if a.get("cores", 0) > 0],
                120, "the application to get an executor on the worker",
            )  # fmt: skip
            assert proc.poll() is None, f"spark-submit exited with {proc.returncode}:\n{submit_log()}"
            app_id = apps[0]["id"]
            messages: list = []
            deadline = time.monotonic() + 150
            while len(messages) < len(expected) and proc.poll() is None and time.monotonic() < deadline:
                messages += amqp_clients.receive(amqp_url, sink, len(expected) - len(messages), timeout=5)
            assert len(messages) == len(expected), f"got {len(messages)} of {len(expected)} windows on AMQP:\n{submit_log()}"
            records = _consume_records(kafka_bootstrap, topic, len(expected), timeout=60)
        finally:
            code = stop_submit(proc)
        assert code in (0, 130, -signal.SIGINT), f"spark-submit ended with {code}:\n{submit_log()}"
        # The executor ran from the worker's work folder with the shipped archive, not from the repository.
        assert (tmp_path / "spark" / "work" / app_id / "0" / archive.name).is_file()

    got_amqp = sorted((message_to_json(m) for m in messages), key=lambda r: r["window_start"])
    assert got_amqp == expected
    got_kafka = sorted((json.loads(v) for _, v in records), key=lambda r: r["window_start"])
    assert got_kafka == expected
    assert all(k.decode() == json.loads(v)["window_start"] for k, v in records)
