"""The whole story on the cluster of hosts, as one seeded run a fault scenario can interrupt.

    devices (simulator) -> Artemis ``<p>.temperature`` (MULTICAST: queue ``.bridge``, and ``.spark`` for the AMQP variant)
      -> bridge1 + bridge2 (forwarders sharing the ``.bridge`` queue) -> Kafka ``<p>.temperature`` (2 partitions)
      -> windowed-max job on the Spark cluster (driver on spark-master, executors on worker1/worker2),
         reading Kafka ``<p>.temperature`` (``kafka`` variant) or the ``.spark`` queue with no shared log dir (``amqp``)
      -> AMQP ``<p>.max`` (read by the receiver host) + Kafka ``<p>.max``

Every client gets every broker: the Artemis URLs in failover order, every Kafka node as
bootstrap. The ground truth is the simulator's accepted log (on the devices host); this
process, the observer at 10.77.0.1, reads Kafka live and compares at the end, reusing the
single-host fault story's :class:`~tests.faults.story.Outcome`.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from amqp_kafka_bridge.readiness import wait_until_ready

from cluster.brokers import create_topics
from cluster.harness import BRIDGES, DEVICES, DRIVER, RECEIVER, Cluster
from demo.children import Child
from demo.commands import child_env
from demo.kafka_tally import KafkaTally
from demo.topology import ensure_fanout
from deploy.executor_env import submit_env
from deploy.standalone import spark_home, spark_script
from simulators.feed import read_accepted_log
from simulators.model import Reading
from tests.faults.story import Outcome, closed_windows, line_count, progress_entry, reading_key
from tests.simulator_runs import temperature_command
from tests.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
START_MS = 1_764_370_000_000  # aligned to 5 s windows
BRIDGE_HTTP_PORT = 8080
DEVICES_COUNT = 20
RATE = 40.0  # readings per wall-clock second, all devices together
TIME_SCALE = 5  # event time runs 5x faster: a 5 s window every wall-clock second, ~40 readings each
PARTITIONS = 2
# Readings delayed by a fault (held by a cut-off bridge, queued on a device during a failover) must still be
# on time: 200 s of event time is 40 s of wall-clock time here, longer than any fault the scenarios inject.
WATERMARK_S = 200


@dataclass
class ClusterStory:
    """One run on ``cluster`` with names prefixed by ``prefix``; ``variant`` is the job's source (amqp|kafka)."""

    cluster: Cluster
    prefix: str
    variant: str
    jars: list[str]
    jobs_zip: Path
    progress: list[dict] = field(default_factory=list, init=False)
    results_amqp: list[dict] = field(default_factory=list, init=False)
    children: dict[str, Child] = field(default_factory=dict, init=False)
    job_runs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        p = self.prefix
        self.address = f"{p}.temperature"
        self.queues = {c: f"{self.address}::{self.address}.{c}" for c in ("bridge", "spark")}
        self.max_address, self.topic, self.max_topic = f"{p}.max", f"{p}.temperature", f"{p}.max"
        consumers = ["bridge", "spark"] if self.variant == "amqp" else ["bridge"]
        assert self.cluster.artemis is not None
        ensure_fanout(self.cluster.artemis.primary.url, self.address, [self.queues[c] for c in consumers])
        assert self.cluster.kafka is not None
        create_topics(
            self.cluster.kafka_bootstrap, [self.topic, self.max_topic], PARTITIONS, self.cluster.kafka.replication_factor
        )
        self._lock = threading.Lock()
        self._kafka: dict[str, list[bytes]] = {self.topic: [], self.max_topic: []}
        self._tally = KafkaTally(self.cluster.kafka_bootstrap, [self.topic, self.max_topic], on_record=self._on_record)

    @property
    def accepted_log(self) -> Path:
        return self.cluster.network[DEVICES].folder / f"{self.prefix}-accepted.jsonl"

    # --- the processes, each on its host ----------------------------------------------
    def start_bridge(self, host: str) -> Child:
        """A forwarder replica on ``host``: the ``.bridge`` queue -> Kafka, every broker URL for failover."""
        address = self.cluster.host_address(host)
        routes = self.cluster.network[host].folder / f"{self.prefix}-routes.yaml"
        routes.write_text(
            f'routes:\n  - address: "{self.queues["bridge"]}"\n    topic: "{self.topic}"\n    direction: to-kafka\n'
        )
        urls = [arg for url in self.cluster.amqp_url.split(",") for arg in ("--broker-url", url)]
        cmd = [
            sys.executable, "-m", "amqp_kafka_bridge", "--mode", "forwarder", *urls,
            "--kafka-bootstrap", self.cluster.kafka_bootstrap, "--routes-file", str(routes), "--key-property", "device_id",
            "--http-host", address, "--http-port", str(BRIDGE_HTTP_PORT),
        ]  # fmt: skip
        bridge = self._start(host, host, cmd, child_env())
        wait_until_ready(self.bridge_http(host), 90, bridge.proc)
        return bridge

    def bridge_http(self, host: str) -> str:
        return f"http://{self.cluster.host_address(host)}:{BRIDGE_HTTP_PORT}"

    def start_job(self) -> Child:
        """spark-submit the windowed-max job from the driver host (client mode) to the standalone master."""
        self.job_runs += 1
        driver = self.cluster.network[DRIVER]
        spark = self.cluster.spark
        assert spark is not None
        state = self.cluster.network.storage / self.prefix  # durable storage: checkpoint (executors write state there)
        source = (
            ["--source", "amqp", "--source-address", self.queues["spark"], "--log-dir", str(driver.folder / self.prefix / "amqp-log"),
             "--no-shared-log-dir"]
            if self.variant == "amqp"
            else ["--source", "kafka", "--source-topic", self.topic]
        )  # fmt: skip
        cmd = [
            spark_script("spark-submit"), "--master", spark.master_url, "--deploy-mode", "client",
            "--name", f"windowed-max-{self.prefix}", "--driver-memory", "512m",
            "--conf", "spark.executor.memory=512m", "--conf", "spark.executor.cores=1", "--conf", "spark.cores.max=2",
            "--conf", "spark.ui.enabled=false", "--conf", "spark.log.level=WARN",
            "--conf", f"spark.driver.host={driver.address}", "--conf", f"spark.driver.bindAddress={driver.address}",
            "--conf", f"spark.pyspark.python={sys.executable}",
            "--py-files", str(self.jobs_zip), "--jars", ",".join(self.jars),
            str(REPO_ROOT / "jobs" / "windowed_max.py"),
            "--amqp-url", self.cluster.amqp_url, *source, "--sink-address", self.max_address,
            "--kafka-bootstrap", self.cluster.kafka_bootstrap, "--kafka-topic", self.max_topic,
            "--checkpoint-dir", str(state / "checkpoint"), "--trigger-interval", "1 second",
            "--watermark", f"{WATERMARK_S} seconds",
        ]  # fmt: skip
        env = {**submit_env(spark_home=str(spark_home())), "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": driver.address}
        env["PYTHONUNBUFFERED"] = "1"
        return self._start(DRIVER, f"job-{self.job_runs}", cmd, env, self._on_job_line)

    def current_job(self) -> Child:
        """The job's latest run (each run is a child of its own, ``job-<run>``)."""
        return self.children[f"job-{self.job_runs}"]

    def wait_job_running(self, timeout: float = 300) -> None:
        job = self.current_job()
        wait_for(lambda: self.job_batches() or not job.running(), timeout, "the job's first micro-batch")
        assert job.running(), f"the job exited with {job.proc.returncode}; log {job.log_file}"

    def start_receiver(self) -> Child:
        cmd = [
            sys.executable,
            "-m",
            "simulators.receiver",
            "--url",
            self.cluster.amqp_url,
            "--address",
            self.max_address,
            "--json",
        ]
        return self._start(RECEIVER, "receiver", cmd, child_env(), self._on_result_line)

    def start_simulator(self, count: int, seed: int) -> Child:
        cmd = temperature_command(
            url=self.cluster.amqp_url, address=self.address, devices=DEVICES_COUNT, rate=RATE, count=count, seed=seed,
            time_scale=TIME_SCALE, start_ms=START_MS, accepted_log=self.accepted_log, drain_timeout=180, quiet=True,
        )  # fmt: skip
        return self._start(DEVICES, "simulator", cmd, child_env())

    def start_all(self, count: int, seed: int) -> Child:
        """The job, the receiver and both bridge replicas; once the job runs, the devices. Returns the simulator."""
        self.start_job()
        self.start_receiver()
        for host in BRIDGES:
            self.start_bridge(host)
        self.wait_job_running()
        return self.start_simulator(count, seed)

    def stop_all(self) -> None:
        """Stop the run's processes: the devices first, the job's Python driver with SIGTERM (its queries stop cleanly)."""
        for name, child in reversed(list(self.children.items())):
            child.stop(signal.SIGTERM, timeout=30, only="windowed_max.py" if name.startswith("job") else None)
        self._tally.stop()

    # --- signals ---------------------------------------------------------------------
    def accepted_count(self) -> int:
        return line_count(self.accepted_log)

    def accepted(self) -> list[Reading]:
        return read_accepted_log(self.accepted_log)

    def kafka_count(self, topic: str) -> int:
        """Records seen on ``topic`` so far."""
        return self._tally.count(topic)

    def job_batches(self) -> int:
        with self._lock:
            return sum(1 for p in self.progress if p["run"] == self.job_runs)

    def vital_children(self) -> dict[str, Child]:
        """The job's latest run (a scenario may stop an earlier one on purpose)."""
        return {"job": self.current_job()}

    def wait_outputs(self, accepted: list[Reading], timeout: float) -> list[dict]:
        """Wait until every accepted reading is on Kafka and every closed window on Kafka ``max`` and at the receiver."""
        keys = set(accepted)
        expected = closed_windows(accepted, WATERMARK_S * 1000)
        starts = {w["window_start"] for w in expected}

        def done() -> bool:
            with self._lock:
                readings = {reading_key(v) for v in self._kafka[self.topic]}
                on_kafka = {json.loads(v)["window_start"] for v in self._kafka[self.max_topic]}
                on_amqp = {r["window_start"] for r in self.results_amqp}
            return keys <= readings and starts <= on_kafka and starts <= on_amqp

        wait_for(done, timeout, "every accepted reading on Kafka and every closed window on Kafka max and AMQP max", interval=0.5)
        return expected

    def outcome(self, accepted: list[Reading], expected: list[dict]) -> Outcome:
        """What reached each output (call after :meth:`stop_all`)."""
        with self._lock:
            readings, results = list(self._kafka[self.topic]), list(self._kafka[self.max_topic])
            return Outcome.of(accepted, expected, readings, results, list(self.results_amqp), self.progress, self.job_runs)

    # --- internals -------------------------------------------------------------------
    def _start(
        self, host: str, name: str, cmd: list[str], env: dict[str, str], on_line: Callable[[str], None] | None = None
    ) -> Child:
        child = self.cluster.start_child(host, f"{self.prefix}-{name}", cmd, env=env, on_line=on_line)
        self.children[name] = child
        return child

    def _on_job_line(self, line: str) -> None:
        entry = progress_entry(line, self.job_runs)
        if entry is not None:
            with self._lock:
                self.progress.append(entry)

    def _on_result_line(self, line: str) -> None:
        if line.startswith("{"):
            with self._lock:
                self.results_amqp.append(json.loads(line))

    def _on_record(self, topic: str, value: bytes) -> None:
        with self._lock:
            self._kafka[topic].append(value)
