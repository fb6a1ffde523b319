"""The demo job on a real Spark standalone cluster, with the connector from a packed environment.

What a cluster user does (docs/deployment.md): build the wheels and ``jobs.zip``
(:mod:`deploy.package`), pack the connector's wheels with their C extensions into
``env.tar.gz`` (:mod:`deploy.executor_env`, venv-pack), and submit with
``--archives env.tar.gz#environment --py-files jobs.zip`` and
``PYSPARK_PYTHON=./environment/bin/python``. No ``PYTHONPATH`` anywhere: the worker starts
without one (:mod:`deploy.standalone`), ``spark-submit`` gets none, and the driver's
planning process finds the connector in ``./environment`` of its working folder.

The simulator publishes a seeded, bounded set of readings; every window the job emits on
AMQP and Kafka is checked against the plain-Python recomputation of the accepted readings,
and the executor's Python processes are checked to run from the archive the worker unpacked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy import executor_env, package
from deploy.standalone import StandaloneCluster, spark_home, spark_script
from simulators.feed import read_accepted_log
from simulators.messages import message_to_json
from tests import amqp_clients
from tests.jobs.oracle import expected_windows
from tests.kafka_clients import consume as _consume_records
from tests.simulator_runs import temperature_command
from tests.waiting import wait_for

# The timeout covers building and packing the executor environment (one to three minutes) and a busy machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parents[2]
START_MS = 1_764_370_000_000  # aligned to 5 s windows
WATERMARK_MS = 10_000


@pytest.fixture(scope="session")
def cluster_dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make dist`` plus the packed executor environment, once per session: wheels, jobs.zip, environment/, env.tar.gz."""
    dist = tmp_path_factory.mktemp("cluster-dist")
    package.build_wheels(dist)
    package.build(dist / "jobs.zip")
    executor_env.build(dist)
    return dist


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


def python_workers_in(folder: Path) -> list[int]:
    """Pids of the Python processes Spark started with the shipped interpreter and ``folder`` as working folder."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:  # gone, or not ours to read
            continue
        if cwd == folder and argv0 == executor_env.EXECUTOR_PYTHON:
            pids.append(int(entry.name))
    return pids


def loaded_from(pid: int, folder: Path) -> set[str]:
    """Shared objects under ``folder`` that process ``pid`` has mapped (its C extensions' real origin)."""
    try:
        lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    except OSError:
        return set()
    return {line.split()[-1] for line in lines if line.split()[-1].startswith(f"{folder}/") and ".so" in line}


def connector_file_as_seen_by(pid: int, folder: Path) -> str:
    """``pyspark_amqp.__file__`` for the interpreter, working folder and PYTHONPATH of executor process ``pid``."""
    environ = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in item)
    done = subprocess.run(
        [executor_env.EXECUTOR_PYTHON, "-c", "import pyspark_amqp; print(pyspark_amqp.__file__)"],
        cwd=folder, env={"PATH": environ.get("PATH", ""), "PYTHONPATH": environ.get("PYTHONPATH", "")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_windowed_max_on_a_standalone_cluster(
    amqp_url: str,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    spark_kafka_jars: tuple[Path, ...],
    cluster_dist: Path,
    tmp_path: Path,
) -> None:
    source, sink, topic = unique_name("temperature"), unique_name("max"), unique_name("max")
    archive, jobs_zip = cluster_dist / executor_env.ARCHIVE_NAME, cluster_dist / "jobs.zip"
    accepted = publish(amqp_url, source, tmp_path / "accepted.jsonl")
    assert len(accepted) == 4000
    expected = expected_windows(accepted, 5000, closed_before_ms=max(r.ts for r in accepted) - WATERMARK_MS)
    assert len(expected) == 2  # [-5 s, 0) from the first late readings, then [0, 5 s); the rest stay open

    # The driver runs in tmp_path, where ./environment is the environment the archive was packed from.
    (tmp_path / executor_env.ENV_NAME).symlink_to(cluster_dist / executor_env.ENV_NAME)
    # The driver host's own disk holds the source's log: the worker cannot see it, as on a cluster without
    # shared storage, so the job runs with --no-shared-log-dir (records travel in the tasks). The checkpoint
    # stays on storage every host sees (executors write the windows' state store there, as on HDFS or S3).
    driver_disk = tmp_path / "driver-disk"
    driver_disk.mkdir()
    env = {**executor_env.submit_env(os.environ, spark_home=str(spark_home())), "SPARK_LOCAL_IP": "127.0.0.1"}
    assert "PYTHONPATH" not in env
    with StandaloneCluster.on_free_ports(
        tmp_path / "spark", worker_cores=1, worker_memory="1g", hidden_from_worker=(driver_disk,)
    ) as cluster:
        cmd = [
            spark_script("spark-submit"), "--master", cluster.master_url, "--deploy-mode", "client",
            "--name", "windowed-max-cluster-test", "--driver-memory", "512m",
            "--conf", "spark.executor.memory=512m", "--conf", "spark.cores.max=1", "--conf", "spark.ui.enabled=false",
            "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1",
            "--archives", f"{archive}#{executor_env.ENV_NAME}", "--py-files", str(jobs_zip),
            "--jars", ",".join(str(j) for j in spark_kafka_jars),
            str(REPO_ROOT / "jobs" / "windowed_max.py"),
            "--amqp-url", amqp_url, "--source-address", source, "--sink-address", sink,
            "--kafka-bootstrap", kafka_bootstrap, "--kafka-topic", topic,
            "--checkpoint-dir", str(tmp_path / "checkpoint"), "--log-dir", str(driver_disk / "amqp-log"),
            "--no-shared-log-dir",
            "--trigger-interval", "1 second", "--timeout", "600",
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
                180, "the application to get an executor on the worker",
            )  # fmt: skip
            assert proc.poll() is None, f"spark-submit exited with {proc.returncode}:\n{submit_log()}"
            executor_dir = (tmp_path / "spark" / "work" / apps[0]["id"] / "0").resolve()
            messages: list = []
            deadline = time.monotonic() + 360
            while len(messages) < len(expected) and proc.poll() is None and time.monotonic() < deadline:
                messages += amqp_clients.receive(amqp_url, sink, len(expected) - len(messages), timeout=5)
            assert len(messages) == len(expected), f"got {len(messages)} of {len(expected)} windows on AMQP:\n{submit_log()}"
            records = _consume_records(kafka_bootstrap, topic, len(expected), timeout=60)
            # The executor's Python workers (they sent the windows to AMQP) run the shipped interpreter in the
            # executor's folder and loaded proton's C extension from the archive the worker unpacked there.
            workers = python_workers_in(executor_dir)
            assert workers, f"no {executor_env.EXECUTOR_PYTHON} process in {executor_dir}:\n{submit_log()}"
            shipped = executor_dir / executor_env.ENV_NAME
            mapped = set().union(*(loaded_from(pid, shipped) for pid in workers))
            assert any("cproton_ffi" in path for path in mapped), sorted(mapped)[:10]
            connector_file = connector_file_as_seen_by(workers[0], executor_dir)
            # The log is on the driver's disk, and the worker's executors cannot see it.
            assert list((driver_disk / "amqp-log").rglob("*.wal")), "the source wrote no log on the driver's disk"
            seen = subprocess.run(
                ["nsenter", "--target", str(workers[0]), "--mount", "ls", "-A", str(driver_disk)],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert seen.returncode == 0 and seen.stdout.strip() == "", f"executors can see the driver's disk: {seen.stdout!r}"
        finally:
            code = stop_submit(proc)
        assert code in (0, 130, -signal.SIGINT), f"spark-submit ended with {code}:\n{submit_log()}"
        # The worker unpacked the archive into the executor's folder as ./environment.
        assert (shipped / "pyvenv.cfg").is_file()
        assert Path(connector_file).resolve().is_relative_to(shipped.resolve()), connector_file

    got_amqp = sorted((message_to_json(m) for m in messages), key=lambda r: r["window_start"])
    assert got_amqp == expected
    got_kafka = sorted((json.loads(v) for _, v in records), key=lambda r: r["window_start"])
    assert got_kafka == expected
    assert all(k.decode() == json.loads(v)["window_start"] for k, v in records)
