"""The whole demo story as real processes, for fault tests.

    simulator -> Artemis ``<p>.temperature`` (MULTICAST: one queue for the job, one for the bridge)
      -> windowed-max job (spark-submit, AMQP source with its log, checkpoint) -> AMQP ``<p>.max`` + Kafka ``<p>.max``
      -> bridge forwarder -> Kafka ``<p>.temperature``

The children are the demo's own commands (:mod:`demo.commands`), so what is tested is what
``make demo`` runs. The ground truth is the simulator's accepted log: every reading the broker
accepted. :meth:`Story.outcome` reads every output back and counts what arrived, what arrived
twice and what is missing.
"""

from __future__ import annotations

import json
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from amqp_kafka_bridge.readiness import wait_until_ready

from demo.children import Child
from demo.commands import bridge_cmd, child_env, job_cmd, routes_yaml
from demo.kafka_tally import KafkaTally
from demo.settings import DemoSettings
from demo.topology import ArtemisManagement, ensure_fanout, ensure_topics
from services.settings import free_port
from simulators.feed import read_accepted_log
from simulators.model import Reading
from tests import amqp_clients
from tests.jobs.oracle import expected_windows
from tests.simulator_runs import temperature_command
from tests.waiting import wait_for

START_MS = 1_764_370_000_000  # event time of the first reading, aligned to 5 s windows
WATERMARK_MS = 10_000


def reading_key(body: str | bytes) -> Reading:
    """A reading as its identity: a resent reading is the same ``device_id``, ``ts`` and ``temperature``."""
    return Reading.from_json(body)


@dataclass
class Outcome:
    """What reached each output, against what the simulator saw accepted."""

    accepted: int
    accepted_distinct: int
    kafka_readings: int
    kafka_readings_distinct: int
    readings_missing_in_kafka: int
    windows_expected: list[dict]
    amqp_results: list[dict]
    kafka_results: list[dict]
    job_dropped_duplicates: int
    job_malformed: int
    job_runs: int

    @staticmethod
    def distinct(results: list[dict]) -> list[dict]:
        unique = {json.dumps(r, sort_keys=True): r for r in results}
        return sorted(unique.values(), key=lambda r: (r["window_start"], json.dumps(r, sort_keys=True)))

    def summary(self) -> dict[str, int]:
        """The counts a fault test states: what was accepted, delivered, duplicated and lost."""
        return {
            "accepted": self.accepted,
            "accepted_resent_duplicates": self.accepted - self.accepted_distinct,
            "kafka_readings_duplicates": self.kafka_readings - self.kafka_readings_distinct,
            "kafka_readings_missing": self.readings_missing_in_kafka,
            "windows": len(self.windows_expected),
            "amqp_result_duplicates": len(self.amqp_results) - len(self.distinct(self.amqp_results)),
            "kafka_result_duplicates": len(self.kafka_results) - len(self.distinct(self.kafka_results)),
            "job_dropped_duplicate_readings": self.job_dropped_duplicates,
            "job_runs": self.job_runs,
        }

    @classmethod
    def of(
        cls,
        accepted: list[Reading],
        expected: list[dict],
        kafka_readings: list[bytes],
        kafka_results: list[bytes],
        amqp_results: list[dict],
        progress: list[dict],
        job_runs: int,
    ) -> Outcome:
        """The outcome of a run from what each output received (raw Kafka values, decoded AMQP results)."""
        readings = [reading_key(v) for v in kafka_readings]
        keys = set(accepted)
        return cls(
            accepted=len(accepted),
            accepted_distinct=len(keys),
            kafka_readings=len(readings),
            kafka_readings_distinct=len(set(readings)),
            readings_missing_in_kafka=len(keys - set(readings)),
            windows_expected=expected,
            amqp_results=amqp_results,
            kafka_results=[json.loads(v) for v in kafka_results],
            job_dropped_duplicates=sum(p["dropped_duplicates"] for p in progress),
            job_malformed=sum(p["observed"].get("readings", {}).get("malformed", 0) for p in progress),
            job_runs=job_runs,
        )


def closed_windows(accepted: list[Reading], watermark_ms: int) -> list[dict]:
    """The recomputed windows a watermark of ``watermark_ms`` behind the newest accepted reading has closed."""
    return expected_windows(list(dict.fromkeys(accepted)), 5000, closed_before_ms=max(r.ts for r in accepted) - watermark_ms)


def progress_entry(line: str, run: int) -> dict | None:
    """A job output line's ``progress {...}`` as a dict tagged with the job's ``run``, else None."""
    if not line.startswith("progress {"):
        return None
    entry = json.loads(line.split(" ", 1)[1])
    entry["run"] = run
    return entry


def line_count(path: Path) -> int:
    """Lines in ``path`` so far (0 before it exists): the accepted log's length while a simulator writes it."""
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


@dataclass
class Story:
    """One run of the pipeline under test, in ``root``, with names prefixed by ``prefix``.

    The simulator sends ``rate`` readings a second, all devices together.
    """

    root: Path
    amqp_url: str
    kafka_bootstrap: str
    jars: list[str]
    prefix: str
    rate: float
    settings: DemoSettings = field(init=False)
    children: dict[str, Child] = field(default_factory=dict, init=False)
    progress: list[dict] = field(default_factory=list, init=False)
    job_runs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.settings = replace(
            DemoSettings(amqp_url=self.amqp_url, kafka_bootstrap=self.kafka_bootstrap),
            temperature_address=f"{self.prefix}.temperature",
            max_address=f"{self.prefix}.max",
            temperature_topic=f"{self.prefix}.temperature",
            max_topic=f"{self.prefix}.max",
            bridge_http_port=free_port(),
            state_dir=self.root,
        )
        s = self.settings
        ensure_fanout(self.amqp_url, s.temperature_address, [s.spark_queue, s.bridge_queue])
        ensure_topics(self.kafka_bootstrap, [s.temperature_topic, s.max_topic])
        self._lock = threading.Lock()
        self._kafka: dict[str, list[bytes]] = {s.temperature_topic: [], s.max_topic: []}
        self._tally = KafkaTally(self.kafka_bootstrap, [s.temperature_topic, s.max_topic], on_record=self._on_record)

    # --- the processes ---------------------------------------------------------------
    def start_bridge(self) -> Child:
        s = self.settings
        routes = self.root / "routes.yaml"
        routes.write_text(routes_yaml(s))
        bridge = self._start("bridge", bridge_cmd(s, self.amqp_url, self.kafka_bootstrap, routes))
        wait_until_ready(self._bridge_http, 60, bridge.proc)
        return bridge

    def start_job(self) -> Child:
        """Start (or restart, with the same checkpoint and log) the windowed-max job; return once its query runs."""
        self.job_runs += 1
        runs = self.job_runs
        job = self._start("job", job_cmd(self.settings, self.amqp_url, self.kafka_bootstrap, self.jars), self._on_job_line)
        wait_for(lambda: self._job_batches(runs) or not job.running(), 180, "the job's first micro-batch")
        assert job.running(), f"the job exited with {job.proc.returncode}; log {job.log_file}"
        return job

    def start_simulator(self, count: int, rate: float, seed: int) -> Child:
        s = self.settings
        cmd = temperature_command(
            url=self.amqp_url, address=s.temperature_address, devices=20, rate=rate, count=count, seed=seed,
            time_scale=10, start_ms=START_MS, accepted_log=s.accepted_log, drain_timeout=120, quiet=True,
        )  # fmt: skip
        return self._start("simulator", cmd)

    def start_all(self, count: int, seed: int) -> Child:
        """The bridge, then the job; once the job runs, the simulator of ``count`` readings. Returns the simulator."""
        self.start_bridge()
        self.start_job()
        return self.start_simulator(count, self.rate, seed)

    def kill(self, name: str) -> None:
        """SIGKILL a child and everything it started (spark-submit: JVM, Python driver, receivers)."""
        self.children[name].stop(signal.SIGKILL, timeout=0.0)

    def stop_all(self) -> None:
        """Stop the children: the job's Python driver first with SIGTERM (its queries stop cleanly)."""
        for name, child in list(self.children.items()):
            child.stop(signal.SIGTERM, timeout=30, only="windowed_max.py" if name == "job" else None)
        self._tally.stop()

    # --- signals ---------------------------------------------------------------------
    def accepted(self) -> list[Reading]:
        return read_accepted_log(self.settings.accepted_log)

    def accepted_count(self) -> int:
        return line_count(self.settings.accepted_log)

    def vital_children(self) -> dict[str, Child]:
        """The job and the bridge: every fault here is one they must survive (a killed one is restarted)."""
        return {name: self.children[name] for name in ("job", "bridge")}

    def wait_outputs(self, accepted: list[Reading], timeout: float) -> list[dict]:
        """Wait until every accepted reading is in Kafka and every closed window on Kafka ``max``."""
        keys = set(accepted)
        expected = closed_windows(accepted, WATERMARK_MS)
        starts = {w["window_start"] for w in expected}

        def missing() -> tuple[int, int]:
            with self._lock:
                readings = {reading_key(v) for v in self._kafka[self.settings.temperature_topic]}
                windows = {json.loads(v)["window_start"] for v in self._kafka[self.settings.max_topic]}
            return len(keys - readings), len(starts - windows)

        try:
            wait_for(lambda: missing() == (0, 0), timeout, "every accepted reading and closed window on Kafka", interval=0.5)
        except AssertionError as exc:
            readings, windows = missing()
            raise AssertionError(
                f"{exc}: {readings} of {len(keys)} readings and {windows} of {len(starts)} windows missing; "
                f"running: {', '.join(f'{n} {c.running()}' for n, c in self.vital_children().items())}; "
                f"the bridge's last warnings: {self._last_warnings('bridge')}"
            ) from None
        return expected

    def _last_warnings(self, name: str, count: int = 5) -> list[str]:
        """The last ``count`` distinct warnings, errors and rejections a child logged, librdkafka's lines left out."""
        log = self.children[name].log_file
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        latest: dict[str, str] = {}  # message -> its last occurrence, in the order of last occurrence
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict) or entry.get("logger") == "bridge.librdkafka":
                continue
            if entry.get("level") in {"warning", "error"} or entry.get("msg") == "delivery rejected":
                msg = str(entry.get("msg"))
                latest.pop(msg, None)
                latest[msg] = f"{entry.get('ts')} {msg} {entry.get('error', entry.get('reason', ''))}"[:300]
        return list(latest.values())[-count:]

    def outcome(self, accepted: list[Reading], expected: list[dict]) -> Outcome:
        """Read every output back (call after :meth:`stop_all`)."""
        s = self.settings
        with ArtemisManagement(self.amqp_url) as mgmt:
            ok, count = mgmt.call(f"queue.{s.max_address}", "getMessageCount")
        assert ok, f"cannot count the results queue {s.max_address}: {count}"
        amqp = amqp_clients.receive(self.amqp_url, s.max_address, int(count), timeout=60)
        with self._lock:
            readings, results = list(self._kafka[s.temperature_topic]), list(self._kafka[s.max_topic])
        return Outcome.of(accepted, expected, readings, results, [json.loads(m.body) for m in amqp], self.progress, self.job_runs)

    # --- internals -------------------------------------------------------------------
    def _start(self, name: str, cmd: list[str], on_line: Callable[[str], None] | None = None) -> Child:
        log = self.settings.log_file(f"{name}-{self.job_runs}" if name == "job" else name)
        child = Child(name, cmd, log, env=child_env(), on_line=on_line)
        self.children[name] = child
        return child

    @property
    def _bridge_http(self) -> str:
        return f"http://127.0.0.1:{self.settings.bridge_http_port}"

    def bridge_readiness(self) -> int:
        """The HTTP status of the bridge's ``/readyz`` now (503: not ready; 0: no answer)."""
        try:
            with urllib.request.urlopen(self._bridge_http + "/readyz", timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def _on_job_line(self, line: str) -> None:
        entry = progress_entry(line, self.job_runs)
        if entry is not None:
            with self._lock:
                self.progress.append(entry)

    def _job_batches(self, run: int) -> int:
        with self._lock:
            return sum(1 for p in self.progress if p["run"] == run)

    def _on_record(self, topic: str, value: bytes) -> None:
        with self._lock:
            self._kafka[topic].append(value)
