"""The orchestration: start everything in order, print results live, stop everything in order.

Order up: services, broker fan-out and Kafka topics, bridge (until ``/readyz``), Spark job,
receiver, simulator. Order down: simulator (its in-flight readings settle), then a drain
until the job has emitted every window the watermark closes over the accepted readings
and Kafka has them, then receiver, job, bridge, services. The drain is bounded by the
job's own progress (its ``progress {...}`` lines, :mod:`demo.progress`), not by a fixed
grace, so a machine too busy to start Spark quickly still completes. A second Ctrl-C
skips the drain.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from demo import commands
from demo.children import Child
from demo.kafka_tally import KafkaTally, window_end_ms
from demo.progress import JobProgress
from demo.settings import REPO_ROOT, DemoSettings
from demo.topology import ensure_fanout, ensure_topics
from simulators.feed import read_accepted_log
from simulators.model import Reading
from simulators.results import WindowResult, format_row, header

_BROKER_TITLES = {"artemis": "Artemis", "activemq": "ActiveMQ Classic", "rabbitmq": "RabbitMQ"}
QUIET = 1.0  # seconds without a new result before the pending ones are printed
STATUS_EVERY = 15.0  # seconds between "still waiting" lines while draining


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter output)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Summary:
    """What one run did."""

    accepted: int
    kafka_readings: int
    amqp_windows: int
    kafka_windows: int
    closed_windows: int
    seconds: float
    complete: bool

    def lines(self, s: DemoSettings) -> list[str]:
        return [
            f"summary ({self.seconds:.0f} s):",
            f"  readings accepted by the broker   {self.accepted:7d}  (AMQP {s.temperature_address})",
            f"  readings forwarded to Kafka       {self.kafka_readings:7d}  (Kafka {s.temperature_topic}, by the bridge)",
            f"  windows closed by the watermark   {self.closed_windows:7d}",
            f"  windows emitted on AMQP           {self.amqp_windows:7d}  (AMQP {s.max_address})",
            f"  windows emitted on Kafka          {self.kafka_windows:7d}  (Kafka {s.max_topic})",
            f"  state and logs in {shown(s.state_dir)}",
            "  all closed windows on both sinks" if self.complete else "  INCOMPLETE: some closed windows did not arrive",
        ]


class Demo:
    """One demo run; :meth:`request_stop` (from a signal handler) ends it early."""

    def __init__(self, settings: DemoSettings, out: TextIO = sys.stdout) -> None:
        self.s = settings
        self.out = out
        self._lock = threading.RLock()  # output and result sets; reentrant: a signal handler may print meanwhile
        self._stop = threading.Event()
        self._hurry = threading.Event()
        self._amqp_ends: set[int] = set()  # window ends (epoch ms) received on each sink
        self._kafka_ends: set[int] = set()
        self._header_shown = False
        self._kafka_readings = 0
        self._pending_rows: list[WindowResult] = []
        self._last_row_at = 0.0
        self._job_progress = JobProgress()
        self._job_started = 0.0

    def request_stop(self) -> None:
        """First call: stop publishing and drain. Second call: skip the drain."""
        if self._stop.is_set():
            self._hurry.set()
        self._stop.set()

    def say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def run(self) -> int:
        started = time.monotonic()
        self._reset_state()
        with self._services() as (amqp_url, kafka_bootstrap, jars):
            s = self.s
            if s.broker == "artemis":
                ensure_fanout(amqp_url, s.temperature_address, [s.spark_queue, s.bridge_queue])
            else:  # ActiveMQ's virtual topic or RabbitMQ's fanout exchange (BROKER=activemq|rabbitmq)
                from services import ServiceSettings
                from services.topology import ensure_fanout as ensure_broker_fanout

                ensure_broker_fanout(ServiceSettings.from_env(), amqp_url, s.temperature_address, ["spark", "bridge"])
            ensure_topics(kafka_bootstrap, [s.temperature_topic, s.max_topic])
            tally = KafkaTally(kafka_bootstrap, [s.temperature_topic, s.max_topic], self._on_kafka)
            children: list[Child] = []
            try:
                ok = self._run_children(amqp_url, kafka_bootstrap, jars, children)
            finally:
                for child, sig, timeout in self._stop_plan(children):
                    child.stop(sig, timeout, only="windowed_max.py" if child.name == "job" else None)
                tally.stop()
                self._print_rows(force=True)
            accepted = read_accepted_log(s.accepted_log) if s.accepted_log.exists() else []
            closed = self._closed_ends(accepted)
            summary = Summary(
                accepted=len(accepted),
                kafka_readings=self._kafka_readings,
                amqp_windows=len(self._amqp_ends),
                kafka_windows=len(self._kafka_ends),
                closed_windows=len(closed),
                seconds=time.monotonic() - started,
                complete=self._drained(accepted),
            )
        self.say("")
        for line in summary.lines(self.s):
            self.say(line)
        return 0 if ok and summary.complete else 1

    def _reset_state(self) -> None:
        """A run starts from nothing: no checkpoint, no source log, fresh output files."""
        s = self.s
        s.state_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("checkpoint", "amqp-log"):
            shutil.rmtree(s.state_dir / sub, ignore_errors=True)
        for f in (s.accepted_log, s.amqp_results):
            f.unlink(missing_ok=True)

    @contextmanager
    def _services(self) -> Iterator[tuple[str, str, list[str]]]:
        """The services' URLs and the Spark Kafka jars; starts (and later stops) local services if needed."""
        from services import LocalServices, ServiceSettings

        local = LocalServices(ServiceSettings.from_env())  # fetches the JVM parts (cached) and knows the jars
        jars = [str(p) for p in local.spark_kafka_jars]
        if self.s.amqp_url and self.s.kafka_bootstrap:
            self.say(f"using running services: AMQP {self.s.amqp_url}, Kafka {self.s.kafka_bootstrap}")
            yield self.s.amqp_url, self.s.kafka_bootstrap, jars
            return
        already_up = local.artemis.ready() and local.kafka.ready()
        names = f"{_BROKER_TITLES.get(self.s.broker, self.s.broker)} and Kafka"
        self.say(f"starting {names} ..." if not already_up else f"{names} are already running")
        local.start()
        self.say(f"services ready: AMQP {local.amqp_url}, Kafka {local.kafka_bootstrap}")
        try:
            yield local.amqp_url, local.kafka_bootstrap, jars
        finally:
            if not already_up:
                self.say(f"stopping {names} ...")
                local.stop()

    def _run_children(self, amqp_url: str, kafka_bootstrap: str, jars: list[str], children: list[Child]) -> bool:
        s, env = self.s, commands.child_env()
        if self._stop.is_set():  # Ctrl-C while the services were starting
            return False
        routes = s.state_dir / "bridge-routes.yaml"
        routes.write_text(commands.routes_yaml(s))
        bridge = Child("bridge", commands.bridge_cmd(s, amqp_url, kafka_bootstrap, routes), s.log_file("bridge"), env, REPO_ROOT)
        children.append(bridge)
        if not self._wait_bridge_ready(bridge, timeout=60):
            return False
        self.say(f"bridge forwarding AMQP {s.temperature_address} -> Kafka {s.temperature_topic}")
        job = Child(
            "job",
            commands.job_cmd(s, amqp_url, kafka_bootstrap, jars),
            s.log_file("job"),
            env,
            REPO_ROOT,
            self._job_progress.on_line,
        )
        self._job_started = time.monotonic()
        children.append(job)
        self.say(f"Spark job started: {s.window_s} s windows, {s.watermark_s} s watermark (log {shown(s.log_file('job'))})")
        receiver = Child(
            "receiver",
            commands.receiver_cmd(s, amqp_url),
            s.log_file("receiver"),
            env,
            REPO_ROOT,
            self._on_amqp,
            stdout_only=True,
        )
        children.append(receiver)
        simulator = Child(
            "simulator", commands.simulator_cmd(s, amqp_url), s.log_file("simulator"), env, REPO_ROOT, self._on_progress
        )
        children.append(simulator)
        how_long = f"for {s.duration:g} s" if s.duration is not None else "until Ctrl-C"
        self.say(f"simulator: {s.devices} devices, {s.rate:g} readings/s, seed {s.seed}, spikes {s.spike_fraction:g}, {how_long}")
        self.say("results appear once the watermark closes a window (Spark's first batch takes a while) ...")

        crashed = self._wait_while_publishing(simulator, [bridge, job, receiver])
        if simulator.running():
            simulator.stop(signal.SIGINT, timeout=40)
        if simulator.proc.returncode != 0:
            self.say(f"simulator exited with status {simulator.proc.returncode} (log {shown(simulator.log_file)})")
        if crashed is not None:
            self.say(f"{crashed.name} exited early with status {crashed.proc.returncode} (log {shown(crashed.log_file)})")
            return False
        return self._drain(job) and simulator.proc.returncode == 0

    def _wait_bridge_ready(self, bridge: Child, timeout: float) -> bool:
        url = f"http://127.0.0.1:{self.s.bridge_http_port}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            if not bridge.running():
                self.say(f"bridge exited with status {bridge.proc.returncode} (log {shown(bridge.log_file)})")
                return False
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            self._stop.wait(0.3)
        self.say(f"bridge not ready at {url} (log {shown(bridge.log_file)})")
        return False

    def _wait_while_publishing(self, simulator: Child, others: list[Child]) -> Child | None:
        """Until the simulator ends or a stop is requested; the first other child that died, if any."""
        while simulator.running() and not self._stop.wait(0.5):
            self._print_rows()
            for child in others:
                if not child.running():
                    return child
        return None

    def _drain(self, job: Child) -> bool:
        """Wait, while the job makes progress, until both sinks have the last closed window and Kafka every reading.

        Bounded by progress, not by a fixed grace: before the job's first micro-batch, by
        ``job_start_timeout`` s from the job's start (Spark starts slowly on a busy machine);
        after it, by ``drain_timeout`` s without a new micro-batch, result or forwarded
        reading. Every ``STATUS_EVERY`` s it says what it is still waiting for.
        """
        s = self.s
        accepted = read_accepted_log(s.accepted_log) if s.accepted_log.exists() else []
        if not accepted:
            return False
        self.say(
            f"publishing stopped; waiting for the last closed windows while the job makes progress "
            f"(gives up after {s.drain_timeout:g} s without progress, or {s.job_start_timeout:g} s without a first micro-batch)"
        )
        last_marker: tuple[int, ...] = ()
        quiet_since = next_status = time.monotonic()
        next_status += STATUS_EVERY
        while not self._hurry.is_set() and job.running():
            self._print_rows()
            if self._drained(accepted):
                return True
            now = time.monotonic()
            progress = self._job_progress.snapshot()
            with self._lock:
                marker = (progress.batches, len(self._amqp_ends), len(self._kafka_ends), self._kafka_readings)
            if marker != last_marker:
                last_marker, quiet_since = marker, now
            if progress.last_batch_at is None and now - self._job_started > s.job_start_timeout:
                self.say(f"gave up after {s.job_start_timeout:g} s (--job-start-timeout): {self._waiting_for(accepted)}")
                return False
            if progress.last_batch_at is not None and now - quiet_since > s.drain_timeout:
                self.say(f"gave up after {s.drain_timeout:g} s without progress (--drain-timeout): {self._waiting_for(accepted)}")
                return False
            if now >= next_status:
                self.say(f"still waiting: {self._waiting_for(accepted)}")
                next_status = now + STATUS_EVERY
            self._hurry.wait(0.3)
        return self._drained(accepted)

    def _waiting_for(self, accepted: list[Reading]) -> str:
        """What the drain is waiting for, in numbers."""
        closed = self._closed_ends(accepted)
        with self._lock:
            on_amqp, on_kafka, forwarded = len(closed & self._amqp_ends), len(closed & self._kafka_ends), self._kafka_readings
        return (
            f"{self._job_progress.snapshot().describe()} of {len(accepted):,} accepted; closed windows on AMQP "
            f"{on_amqp} of {len(closed)}, on Kafka {on_kafka} of {len(closed)}; readings in Kafka {forwarded:,} of {len(accepted):,}"
        )

    def _drained(self, accepted: list[Reading]) -> bool:
        """Every window the final watermark closes is on both sinks, and every reading is in Kafka."""
        closed = self._closed_ends(accepted)
        with self._lock:
            on_sinks = closed <= self._amqp_ends and closed <= self._kafka_ends
        return bool(closed) and on_sinks and self._kafka_readings >= len(accepted)

    def _closed_ends(self, accepted: list[Reading]) -> set[int]:
        """Ends (epoch ms) of the windows holding accepted readings that the final watermark closes."""
        if not accepted:
            return set()
        w = self.s.window_s * 1000
        watermark = max(r.ts for r in accepted) - self.s.watermark_s * 1000
        return {r.ts - r.ts % w + w for r in accepted if r.ts - r.ts % w + w <= watermark}

    def _on_kafka(self, topic: str, value: bytes) -> None:
        if topic == self.s.temperature_topic:
            self._kafka_readings += 1
        elif topic == self.s.max_topic:
            with self._lock:
                self._kafka_ends.add(window_end_ms(value))

    def _on_amqp(self, line: str) -> None:
        """A result from the receiver (reader thread): record it; :meth:`_print_rows` shows it."""
        try:
            result = WindowResult.from_dict(json.loads(line))
        except (ValueError, KeyError, TypeError):
            self.say(f"receiver: {line}")
            return
        with open(self.s.amqp_results, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        with self._lock:
            self._amqp_ends.add(window_end_ms(line))
            self._pending_rows.append(result)
            self._last_row_at = time.monotonic()

    def _print_rows(self, force: bool = False) -> None:
        """Print the results received so far, ordered by window, once none came for ``QUIET`` seconds.

        One micro-batch's windows arrive in a burst, partition by partition, not in order.
        """
        with self._lock:
            if not force and time.monotonic() - self._last_row_at < QUIET:
                return
            rows, self._pending_rows = sorted(self._pending_rows, key=lambda r: r.window_start), []
            if rows and not self._header_shown:
                print(header(), file=self.out)
                self._header_shown = True
            for row in rows:
                print(format_row(row), file=self.out)
            self.out.flush()

    def _on_progress(self, line: str) -> None:
        if line.startswith("sent "):
            self.say(f"simulator: {line}")

    def _stop_plan(self, children: list[Child]) -> list[tuple[Child, int, float]]:
        """How each child is stopped: results last, the job given time to end its queries."""
        how = {
            "simulator": (signal.SIGINT, 40.0),
            "receiver": (signal.SIGINT, 10.0),
            "job": (signal.SIGTERM, 30.0),
            "bridge": (signal.SIGTERM, 25.0),
        }
        order = ["simulator", "receiver", "job", "bridge"]
        by_name = {c.name: c for c in children}
        return [(by_name[n], *how[n]) for n in order if n in by_name]
