"""The whole story under stepped load: how many readings/s it sustains, and how soon a window's result arrives.

    python -m bench.pipeline [--rates 100,200,500,1000,2000,4000] [--step-seconds 60] [--quick] [--json FILE]

What runs is what the demo runs: the temperature simulator publishing to Artemis address
``temperature`` (MULTICAST: one queue for the Spark job, one for the bridge), the
windowed-max job under ``spark-submit`` (5 s windows, 10 s watermark, results to AMQP
``max`` and Kafka ``max``), the bridge as a forwarder (``temperature`` -> Kafka), and an
AMQP receiver on ``max`` here. After a warm-up (the job's first rows and first result),
the simulator publishes at each rate for ``--step-seconds``; every 2 s this samples

* the job's backlog: readings the broker accepted minus rows the job's query read (its
  ``progress {...}`` lines), and
* the bridge's backlog: the depth of the bridge's Artemis queue.

A step is kept up when neither backlog grows over the step by more than 5 % of the rate
(least-squares slope over the step's samples), and the simulator itself reached 95 % of the rate.
The run stops at the first step not kept up. Latency: for each window whose end plus the
watermark delay falls in a step (the moment event time lets Spark close it), the wall
time from then to its result at the AMQP receiver; p50/p99 per step. Event time is the
simulator's clock, which is the wall clock here.

Starts private Artemis and Kafka unless AMQP_URL and KAFKA_BOOTSTRAP are set.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from proton import Timeout
from proton.utils import BlockingConnection

from bench.results import Results, add_json_argument
from demo import commands
from demo.children import Child
from demo.kafka_tally import window_end_ms
from demo.progress import JobProgress
from demo.settings import REPO_ROOT, DemoSettings
from demo.topology import ArtemisManagement, ensure_fanout, ensure_topics

SAMPLE_EVERY = 2.0
GROWTH_TOLERANCE = 0.05  # a backlog may grow by at most this fraction of the rate (messages/s per s)


class LineCounter:
    """Counts the lines of a file another process appends to (the simulator's accepted log)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._offset = 0

    def update(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return self.count
        complete = chunk.rfind(b"\n") + 1  # a torn last line is counted once it is whole
        self.count += chunk.count(b"\n", 0, complete)
        self._offset += complete
        return self.count


class ResultReceiver:
    """Receives the job's results on AMQP ``address`` in a thread; records (window end ms, arrival ms)."""

    def __init__(self, url: str, address: str) -> None:
        self.arrivals: dict[int, float] = {}  # window end -> first arrival (a replayed duplicate keeps the first)
        self._stop = threading.Event()
        self._conn = BlockingConnection(url, timeout=30)
        self._receiver = self._conn.create_receiver(address, credit=100)
        self._thread = threading.Thread(target=self._run, name="results", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._receiver.receive(timeout=0.5)
            except Timeout:
                continue
            now_ms = time.time() * 1000
            body = message.body if isinstance(message.body, (str, bytes)) else str(message.body)
            self.arrivals.setdefault(window_end_ms(body), now_ms)
            self._receiver.accept()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._conn.close()


@dataclass
class Step:
    rate: float
    started_ms: float = 0.0
    first_accept_ms: float = 0.0  # the simulator's first accepted reading (its process start is not publishing)
    ended_ms: float = 0.0
    accepted: int = 0
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (s since start, job backlog, bridge backlog)

    @property
    def published_rate(self) -> float:
        return self.accepted / max((self.ended_ms - (self.first_accept_ms or self.started_ms)) / 1000, 1e-9)

    def slope(self, index: int) -> float:
        """Least-squares growth (messages/s) of backlog ``index`` (1 job, 2 bridge) over the step.

        The whole step, not its end: the job's backlog is a saw-tooth with one tooth per
        micro-batch, and a busy machine's batches take seconds, so a short span misreads it.
        """
        if len(self.samples) < 3:
            return 0.0
        return statistics.linear_regression([s[0] for s in self.samples], [float(s[index]) for s in self.samples]).slope

    def behind(self) -> list[str]:
        """What did not keep up: the simulator itself, the job, the bridge (empty: the step was kept up)."""
        limit = GROWTH_TOLERANCE * self.rate
        checks = (
            ("simulator", self.published_rate < 0.95 * self.rate),
            ("job", self.slope(1) > limit),
            ("bridge", self.slope(2) > limit),
        )
        return [name for name, failed in checks if failed]

    def kept_up(self) -> bool:
        return not self.behind()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Pipeline:
    """The demo's processes on the given services, driven step by step."""

    def __init__(self, amqp_url: str, kafka: str, state_dir: Path, jars: list[str]) -> None:
        from services.settings import free_port

        tag = uuid.uuid4().hex[:6]
        self.s = DemoSettings(
            amqp_url=amqp_url,
            kafka_bootstrap=kafka,
            temperature_address=f"pipe-temperature-{tag}",
            max_address=f"pipe-max-{tag}",
            temperature_topic=f"pipe-temperature-{tag}",
            max_topic=f"pipe-max-{tag}",
            devices=50,
            bridge_http_port=free_port(),
            state_dir=state_dir,
        )
        self.amqp_url, self.kafka, self.jars = amqp_url, kafka, jars
        self.progress = JobProgress()
        self.children: list[Child] = []
        self.accepted: list[LineCounter] = []
        self.env = commands.child_env()

    def start(self, job_start_timeout: float) -> None:
        s = self.s
        ensure_fanout(self.amqp_url, s.temperature_address, [s.spark_queue, s.bridge_queue])
        ensure_topics(self.kafka, [s.temperature_topic, s.max_topic])
        routes = s.state_dir / "routes.yaml"
        routes.write_text(commands.routes_yaml(s))
        bridge_cmd = commands.bridge_cmd(s, self.amqp_url, self.kafka, routes) + ["--log-level", "WARNING"]
        self.children.append(Child("bridge", bridge_cmd, s.log_file("bridge"), self.env, REPO_ROOT))
        job_cmd = commands.job_cmd(s, self.amqp_url, self.kafka, self.jars)
        self.children.append(Child("job", job_cmd, s.log_file("job"), self.env, REPO_ROOT, self.progress.on_line))
        self.receiver = ResultReceiver(self.amqp_url, s.max_address)
        self.job_started = time.monotonic()

    def publish(self, rate: float, seconds: float | None, name: str) -> Child:
        s = self.s
        log = s.state_dir / f"accepted-{name}.jsonl"
        self.accepted.append(LineCounter(log))
        cmd = commands.simulator_cmd(DemoSettings(**{**s.__dict__, "rate": rate, "duration": seconds}), self.amqp_url)
        cmd[cmd.index("--accepted-log") + 1] = str(log)
        simulator = Child(f"simulator-{name}", [*cmd, "--quiet"], s.log_file(f"simulator-{name}"), self.env, REPO_ROOT)
        self.children.append(simulator)
        return simulator

    def accepted_total(self) -> int:
        return sum(c.update() for c in self.accepted)

    def bridge_depth(self) -> int:
        # A connection per sample: an idle BlockingConnection serves no heartbeats and Artemis drops it.
        with ArtemisManagement(self.amqp_url) as mgmt:
            ok, count = mgmt.call(f"queue.{self.s.bridge_queue.split('::', 1)[1]}", "getMessageCount")
        return int(count) if ok else 0

    def check_alive(self) -> None:
        for child in self.children:
            if child.name in ("bridge", "job") and not child.running():
                raise RuntimeError(f"{child.name} exited with {child.proc.returncode}; see {child.log_file}")

    def warm_up(self, rate: float, job_start_timeout: float) -> float:
        """Publish at ``rate`` until the job has read rows and a first result arrived; seconds it took."""
        started = time.monotonic()
        simulator = self.publish(rate, None, "warmup")
        try:
            while not (self.progress.snapshot().rows_read and self.receiver.arrivals):
                self.check_alive()
                if time.monotonic() - started > job_start_timeout:
                    raise TimeoutError(
                        f"warm-up: no first result within {job_start_timeout:g} s; {self.progress.snapshot().describe()} "
                        f"(job log {self.s.log_file('job')})"
                    )
                time.sleep(1.0)  # polls the job's progress and the receiver, bounded by the deadline above
        finally:
            simulator.stop(signal.SIGINT, 40)
        return time.monotonic() - started

    def step(self, rate: float, seconds: float) -> Step:
        step = Step(rate)
        before = self.accepted_total()
        step.started_ms = time.time() * 1000
        simulator = self.publish(rate, seconds, f"{rate:g}")
        while simulator.running() and self.accepted_total() == before:
            time.sleep(0.1)  # the simulator's process is starting; its first accepted reading starts the step's clock
        step.first_accept_ms = time.time() * 1000
        t0 = time.monotonic()
        while simulator.running():
            self.check_alive()
            job_backlog = self.accepted_total() - self.progress.snapshot().rows_read
            step.samples.append((time.monotonic() - t0, job_backlog, self.bridge_depth()))
            time.sleep(SAMPLE_EVERY)  # the sampling period; the loop ends with the simulator
        simulator.stop(signal.SIGINT, 40)
        step.ended_ms = time.time() * 1000
        step.accepted = self.accepted_total() - before
        return step

    def latencies_ms(self, step: Step, watermark_ms: float) -> list[float]:
        """Result arrival minus (window end + watermark) for the windows event time let Spark close during ``step``."""
        out = []
        for end, arrived in self.receiver.arrivals.items():
            closable = end + watermark_ms
            if step.started_ms <= closable < step.ended_ms:
                out.append(arrived - closable)
        return out

    def expected_windows(self, step: Step, window_ms: int, watermark_ms: int) -> int:
        first = step.started_ms - watermark_ms
        last = step.ended_ms - watermark_ms
        return max(int(last // window_ms) - int(first // window_ms), 0)

    def stop(self) -> None:
        how = {"job": (signal.SIGTERM, 30.0), "bridge": (signal.SIGTERM, 25.0)}
        for child in reversed(self.children):
            sig, timeout = how.get(child.name, (signal.SIGINT, 40.0))
            child.stop(sig, timeout, only="windowed_max.py" if child.name == "job" else None)
        if getattr(self, "receiver", None) is not None:
            self.receiver.close()


def run(res: Results, amqp_url: str, kafka: str, rates: list[float], seconds: float, job_start_timeout: float) -> None:
    from services import LocalServices, ServiceSettings

    jars = [str(p) for p in LocalServices(ServiceSettings.from_env()).spark_kafka_jars]
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        pipe = Pipeline(amqp_url, kafka, Path(tmp), jars)
        window_ms, watermark_ms = pipe.s.window_s * 1000, pipe.s.watermark_s * 1000
        try:
            pipe.start(job_start_timeout)
            res.figure("warm_up", pipe.warm_up(rates[0], job_start_timeout), "s", "job start to its first result, publishing")
            steps: list[Step] = []
            for rate in rates:
                step = pipe.step(rate, seconds)
                steps.append(step)
                print(
                    f"  {rate:>7,.0f}/s: published {step.published_rate:>7,.0f}/s, backlog growth job {step.slope(1):+8.1f}/s "
                    f"bridge {step.slope(2):+8.1f}/s -> {'kept up' if step.kept_up() else 'behind: ' + ', '.join(step.behind())}",
                    flush=True,
                )
                if not step.kept_up():
                    break
            # The windows of the last step close while the job catches up; wait (bounded) for their results.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if all(
                    len(pipe.latencies_ms(s, watermark_ms)) >= pipe.expected_windows(s, window_ms, watermark_ms) for s in steps
                ):
                    break
                time.sleep(1.0)  # waits for the receiver's results, bounded by the deadline
        finally:
            pipe.stop()
        sustained = 0.0
        for step in steps:
            tag = f"step_{step.rate:g}"
            lat = pipe.latencies_ms(step, watermark_ms)
            res.figure(f"{tag}_published", step.published_rate, "readings/s")
            res.figure(f"{tag}_job_backlog_growth", step.slope(1), "readings/s", "over the step, least squares")
            res.figure(f"{tag}_bridge_backlog_growth", step.slope(2), "readings/s", "over the step, least squares")
            res.figure(f"{tag}_job_backlog_end", float(step.samples[-1][1]) if step.samples else float("nan"), "readings")
            res.figure(
                f"{tag}_kept_up", float(step.kept_up()), "bool", "behind: " + ", ".join(step.behind()) if step.behind() else None
            )
            res.figure(
                f"{tag}_windows", len(lat), "windows", f"of {pipe.expected_windows(step, window_ms, watermark_ms)} closable"
            )
            res.figure(f"{tag}_latency_p50", pct(lat, 0.5), "ms", "window end + watermark -> result at the AMQP receiver")
            res.figure(f"{tag}_latency_p99", pct(lat, 0.99), "ms")
            if step.kept_up():
                sustained = step.rate
        res.figure("sustained_rate", sustained, "readings/s", f"highest step kept up for {seconds:g} s (0: none)")
        at = next((s for s in steps if s.rate == sustained), steps[0] if steps else None)
        if at is not None:
            lat = pipe.latencies_ms(at, watermark_ms)
            res.figure("latency_p50", pct(lat, 0.5), "ms", f"at {at.rate:g}/s, window end + watermark -> AMQP receiver")
            res.figure("latency_p99", pct(lat, 0.99), "ms", f"at {at.rate:g}/s")


def report(res: Results) -> str:
    f = {k: v["value"] for k, v in res.figures.items()}
    lines = [
        f"pipeline: simulator -> Artemis -> windowed-max job + bridge -> AMQP/Kafka, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}; warm-up {f.get('warm_up', float('nan')):.0f} s",
        f"  sustained: {f.get('sustained_rate', 0):,.0f} readings/s for {res.params['step_seconds']:g} s per step",
        f"  window end (+{res.params['watermark_s']} s watermark) -> result at the AMQP receiver: "
        f"p50 {f.get('latency_p50', float('nan')):,.0f} ms, p99 {f.get('latency_p99', float('nan')):,.0f} ms",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    parser.add_argument("--rates", default="100,200,500,1000,2000,4000", help="readings/s per step, rising")
    parser.add_argument("--step-seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="two 30 s steps (100 and 500/s): a smoke run")
    parser.add_argument("--job-start-timeout", type=float, default=300.0, help="seconds for the job's first result")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    rates = [100.0, 500.0] if args.quick else [float(r) for r in args.rates.split(",") if r.strip()]
    seconds = 30.0 if args.quick else args.step_seconds
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    res = Results("pipeline", {"rates": rates, "step_seconds": seconds, "window_s": 5, "watermark_s": 10})
    if os.environ.get("AMQP_URL") and os.environ.get("KAFKA_BOOTSTRAP"):
        run(res, os.environ["AMQP_URL"], os.environ["KAFKA_BOOTSTRAP"], rates, seconds, args.job_start_timeout)
    else:
        from bench.common import services

        with services() as (amqp_url, kafka):
            run(res, amqp_url, kafka, rates, seconds, args.job_start_timeout)
    print(report(res))
    res.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
