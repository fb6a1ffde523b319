"""Soak: a bounded run at a high rate, sampling the memory and open files of the processes under load.

    python -m bench.soak [--seconds 300] [--receivers 2] [--size 100] [--rate 0] [--churn 1000]

Two loads run side by side for ``--seconds``:

* source ingest: a sender process feeds an Artemis address; ``--receivers`` ingest processes
  of the amqp source (``connectors/src/pyspark_amqp/ingest.py``, configured through the source's own
  options) receive, log, fsync and accept. A thread here plays the Spark query on every
  trigger: plan what is durable (``set_planned``), read it from the log, commit (``trim``), so
  the log stays bounded. The sender runs at most ``--backlog`` messages ahead of what the
  query read: a closed loop, as fast as the slowest stage, with no backlog piling up anywhere.
* bridge: two sender processes feed ``python -m bridge`` (server mode) -> one Kafka topic, each
  with at most ``--window`` unsettled: one on a single long-lived connection, one on a new
  connection every ``--churn`` messages (send them, drain, close, reconnect, attach: what leaks
  per connection or link shows within minutes). Kafka keeps what it gets.

Every ``--interval`` s the RSS (``VmRSS``) and open fd count of the bridge and of each ingest
process are sampled; :func:`flatness` gives the verdict (the test uses the same rule). At the
end every accepted message is counted where it should be: in the ingest log (each message id
once) and in the Kafka topic. Uses AMQP_URL/KAFKA_BOOTSTRAP when set, else private services.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container

from bench.common import open_fds, rss_bytes

_CTX = mp.get_context("spawn")
MB = 1 << 20
_ID = re.compile(rb"soak-(\d{12})\|")

# --- the flatness rule ----------------------------------------------------------------------

WARMUP = 0.2
RSS_TOLERANCE = 0.10
RSS_SLACK = 16 * MB
FD_SLACK = 4
MIN_SAMPLES = 9


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the load started
    rss: int  # bytes
    fds: int


@dataclass(frozen=True)
class Flatness:
    """The verdict on one process's samples, with the numbers behind it."""

    flat: bool
    rss_first: float  # median RSS of the first post-warm-up third, bytes
    rss_last: float  # median RSS of the last third, bytes
    rss_allowed: float  # growth allowed, bytes
    fd_min: int
    fd_max: int
    samples: int  # post-warm-up samples judged
    reason: str
    rss_slope: float = 0.0  # least-squares RSS trend after the warm-up, bytes/s (shown, not judged)

    def describe(self) -> str:
        return (
            f"RSS {self.rss_first / MB:.1f} -> {self.rss_last / MB:.1f} MB (allowed +{self.rss_allowed / MB:.1f}), "
            f"trend {self.rss_slope * 60 / MB:+.2f} MB/min, fds {self.fd_min}..{self.fd_max}, {self.samples} samples: {self.reason}"
        )


def flatness(
    samples: Sequence[Sample],
    warmup: float = WARMUP,
    rss_tolerance: float = RSS_TOLERANCE,
    rss_slack: int = RSS_SLACK,
    fd_slack: int = FD_SLACK,
) -> Flatness:
    """Whether RSS and open fds stayed flat over ``samples`` (taken at a steady interval under load).

    The rule: drop the first ``warmup`` fraction of the samples (imports, buffers and allocator
    arenas filling up), split the rest into thirds. Flat when the median RSS of the last third
    is at most ``max(rss_tolerance x median of the first third, rss_slack)`` above that first
    median (a drop is not a leak), and the open fd count over everything after the warm-up
    varies by at most ``fd_slack``. Needs ``MIN_SAMPLES`` samples after the warm-up.
    """
    judged = list(samples)[int(len(samples) * warmup) :]
    if len(judged) < MIN_SAMPLES:
        return Flatness(False, 0.0, 0.0, 0.0, 0, 0, len(judged), f"too few samples after the warm-up (need {MIN_SAMPLES})")
    third = len(judged) // 3
    first = statistics.median(s.rss for s in judged[:third])
    last = statistics.median(s.rss for s in judged[-third:])
    allowed = max(rss_tolerance * first, float(rss_slack))
    fd_min, fd_max = min(s.fds for s in judged), max(s.fds for s in judged)
    problems = []
    if last - first > allowed:
        problems.append(f"RSS grew {(last - first) / MB:.1f} MB")
    if fd_max - fd_min > fd_slack:
        problems.append(f"open fds varied by {fd_max - fd_min} (> {fd_slack})")
    slope = statistics.linear_regression([s.t for s in judged], [float(s.rss) for s in judged]).slope
    return Flatness(not problems, first, last, allowed, fd_min, fd_max, len(judged), "; ".join(problems) or "flat", slope)


RULE = (
    f"after a warm-up of {WARMUP:.0%} of the samples, median RSS of the last third <= median of the first third "
    f"+ max({RSS_TOLERANCE:.0%}, {RSS_SLACK // MB} MB); open fds max - min <= {FD_SLACK}"
)


class Sampler(threading.Thread):
    """Samples RSS and open fds of named processes every ``interval`` s until ``halt`` is set."""

    def __init__(self, pids: dict[str, int], interval: float = 1.0, extra: Callable[[], int] | None = None) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.pids = pids
        self.interval = interval
        self.extra = extra
        self.samples: dict[str, list[Sample]] = {name: [] for name in pids}
        self.extra_samples: list[int] = []
        self.gone: dict[str, float] = {}  # process name -> when it was found gone
        self.halt = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while True:
            now = time.monotonic() - t0
            for name, pid in self.pids.items():
                if name in self.gone:
                    continue
                try:
                    self.samples[name].append(Sample(now, rss_bytes(pid), open_fds(pid)))
                except (FileNotFoundError, ProcessLookupError):
                    self.gone[name] = now
            if self.extra is not None:
                self.extra_samples.append(self.extra())
            if self.halt.wait(self.interval):
                return


# --- load senders (each in its own process) ---------------------------------------------------

SENT, SETTLED, ACCEPTED, FAILED, CONNECTIONS, ERRORS = range(6)


@dataclass(frozen=True)
class SenderSpec:
    url: str
    address: str
    size: int = 100  # body bytes
    durable: bool = True
    window: int = 1000  # unsettled deliveries at most
    rate: float = 0.0  # messages/s; 0: as fast as the window and the gate allow
    cycle: int = 0  # drain, close and open a new connection after this many messages on one; 0: one connection


class SenderStatus:
    """Counters shared with a sender process, its stop flag and its gate (send while ``sent < gate``)."""

    def __init__(self, gate: int = 2**62) -> None:
        self.counts = _CTX.Array("q", 6, lock=False)
        self.gate = _CTX.Value("q", gate, lock=False)
        self.stop = _CTX.Event()


class _Tick:
    def __init__(self, handler: _LoadSender) -> None:
        self.handler = handler

    def on_timer_task(self, event: Any) -> None:
        self.handler.on_tick()


class _LoadSender(MessagingHandler):
    """Sends numbered messages (body ``soak-<12 digits>|`` + padding) unsettled; counts the outcomes."""

    TICK_S = 0.02

    def __init__(self, spec: SenderSpec, status: SenderStatus, parent_pid: int) -> None:
        super().__init__(prefetch=0)
        self.spec, self.status, self.parent_pid = spec, status, parent_pid
        self.c = status.counts
        self.pad = b"x" * max(0, spec.size - 18)
        self.conn: Any = None
        self.sender: Any = None
        self.draining = False  # no more sends on this connection: it closes once all are settled
        self.done = False

    def on_start(self, event: Any) -> None:
        self.container = event.container
        self.t0 = time.monotonic()
        self._connect()
        self.container.schedule(self.TICK_S, _Tick(self))

    def _connect(self) -> None:
        self.conn = self.container.connect(self.spec.url, reconnect=False)
        self.sender = self.container.create_sender(self.conn, self.spec.address)
        self.sent_before = self.c[SENT]
        self.draining = False
        self.c[CONNECTIONS] += 1

    def on_tick(self) -> None:
        if self.status.stop.is_set() or os.getppid() != self.parent_pid:
            self.draining = True
        if self.conn is None:  # lost: start again unless stopping
            if self.status.stop.is_set():
                self.done = True
            else:
                self._connect()
        self._pump()
        self._maybe_close()
        if not self.done:
            self.container.schedule(self.TICK_S, _Tick(self))

    def on_sendable(self, event: Any) -> None:
        self._pump()

    def _pump(self) -> None:
        if self.draining or self.sender is None:
            return
        c = self.c
        n = min(self.sender.credit, self.spec.window - (c[SENT] - c[SETTLED]), self.status.gate.value - c[SENT])
        if self.spec.rate:
            n = min(n, int(self.spec.rate * (time.monotonic() - self.t0)) - c[SENT])
        if self.spec.cycle:
            n = min(n, self.spec.cycle - (c[SENT] - self.sent_before))
        for _ in range(n):
            seq = c[SENT]
            self.sender.send(Message(id=seq, body=b"soak-%012d|" % seq + self.pad, durable=self.spec.durable))
            c[SENT] = seq + 1
        if self.spec.cycle and c[SENT] - self.sent_before >= self.spec.cycle:
            self.draining = True

    def on_accepted(self, event: Any) -> None:
        self.c[ACCEPTED] += 1

    def on_rejected(self, event: Any) -> None:
        self.c[FAILED] += 1

    def on_released(self, event: Any) -> None:  # released or modified
        self.c[FAILED] += 1

    def on_settled(self, event: Any) -> None:
        self.c[SETTLED] += 1
        self._pump()
        self._maybe_close()

    def _maybe_close(self) -> None:
        if not self.draining or self.conn is None or self.c[SENT] != self.c[SETTLED]:
            return
        self.conn.close()
        self.conn = self.sender = None
        if self.status.stop.is_set():
            self.done = True
        else:
            self._connect()

    def _lost(self, what: str) -> None:
        c = self.c
        c[ERRORS] += 1
        print(f"soak sender {self.spec.address}: {what}; {c[SENT] - c[SETTLED]} unsettled counted as failed", file=sys.stderr)
        c[FAILED] += c[SENT] - c[SETTLED]
        c[SETTLED] = c[SENT]
        if self.conn is not None:
            self.conn.close()
        self.conn = self.sender = None

    def on_transport_error(self, event: Any) -> None:
        cond = event.transport.condition
        self._lost(f"transport error {cond.name if cond else ''} {cond.description if cond else ''}")

    def on_connection_error(self, event: Any) -> None:
        cond = event.connection.remote_condition
        self._lost(f"connection closed by the peer: {cond.description if cond else ''}")

    def on_link_error(self, event: Any) -> None:
        cond = event.link.remote_condition
        self._lost(f"link closed by the peer: {cond.description if cond else ''}")


def _run_sender(spec: SenderSpec, status: SenderStatus, parent_pid: int) -> None:
    Container(_LoadSender(spec, status, parent_pid)).run()


class LoadSender:
    """A sender process and its counters."""

    def __init__(self, spec: SenderSpec, gate: int = 2**62) -> None:
        self.spec = spec
        self.status = SenderStatus(gate)
        self.process = _CTX.Process(target=_run_sender, args=(spec, self.status, os.getpid()), name="soak-sender", daemon=True)

    def start(self) -> None:
        self.process.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop sending, wait until every sent message is settled, and the process gone."""
        self.status.stop.set()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
            raise TimeoutError(f"the sender to {self.spec.address} did not settle everything within {timeout:.0f} s")

    def count(self, which: int) -> int:
        return int(self.status.counts[which])


# --- the query over the ingest logs -------------------------------------------------------------


class LogQuery(threading.Thread):
    """Plays a Spark query over the ingest logs: each trigger plans what is durable, reads it, commits (trims).

    Every record's message number is checked off, so loss and duplicates are counted exactly.
    After each trigger, the sender's gate is moved to ``rows + backlog``.
    """

    def __init__(self, procs: Sequence[Any], gate: Any, backlog: int, trigger_s: float = 0.1) -> None:
        super().__init__(name="soak-query", daemon=True)
        from pyspark_amqp.wal import first_offset

        self.procs = list(procs)
        self.offsets = [first_offset(p.spec.log_folder) for p in self.procs]
        self.gate, self.backlog, self.trigger_s = gate, backlog, trigger_s
        self.rows = self.duplicates = self.batches = 0
        self.seen = bytearray()
        self.error: BaseException | None = None
        self.halt = threading.Event()
        self.target: int | None = None  # set ``caught_up`` once this many distinct messages are read
        self.caught_up = threading.Event()
        gate.value = backlog

    @property
    def unique(self) -> int:
        return self.rows - self.duplicates

    def run(self) -> None:
        try:
            while not self.halt.wait(self.trigger_s):  # a processing-time trigger
                self.trigger()
        except BaseException as err:  # noqa: BLE001 - handed to the driver, which stops the soak with it
            self.error = err

    def trigger(self) -> None:
        from pyspark_amqp.wal import read_range, trim

        for i, proc in enumerate(self.procs):
            end = proc.durable
            if end <= self.offsets[i]:
                continue
            proc.set_planned(end)  # latestOffset
            for record in read_range(proc.spec.log_folder, self.offsets[i], end):  # read
                self._check_off(record.payload)
            trim(proc.spec.log_folder, end)  # commit
            self.offsets[i] = end
            self.batches += 1
        self.gate.value = self.rows + self.backlog
        if self.target is not None and self.unique >= self.target:
            self.caught_up.set()

    def absent(self, sent: int) -> list[int]:
        """Message numbers below ``sent`` not in the log."""
        seen = self.seen[:sent].ljust(sent, b"\0")
        return [i for i, flag in enumerate(seen) if not flag]

    def _check_off(self, payload: bytes) -> None:
        found = _ID.search(payload)
        if found is None:
            raise ValueError(f"a record in the log is not a soak message: {payload[:80]!r}")
        seq = int(found.group(1))
        if seq >= len(self.seen):
            self.seen.extend(bytes(seq + 65536 - len(self.seen)))
        if self.seen[seq]:
            self.duplicates += 1
        self.seen[seq] = 1
        self.rows += 1


class _Drain(MessagingHandler):
    def __init__(self, url: str, address: str, idle_s: float) -> None:
        super().__init__(prefetch=100)
        self.url, self.address, self.idle_s = url, address, idle_s
        self.ids: list[int] = []
        self.last = time.monotonic()

    def on_start(self, event: Any) -> None:
        self.conn = event.container.connect(self.url, reconnect=False)
        event.container.create_receiver(self.conn, self.address)
        event.container.schedule(0.1, self)

    def on_message(self, event: Any) -> None:
        self.last = time.monotonic()
        body = event.message.body
        found = _ID.search(bytes(body) if isinstance(body, (bytes, memoryview)) else b"")
        self.ids.append(int(found.group(1)) if found else -1)

    def on_timer_task(self, event: Any) -> None:
        if time.monotonic() - self.last >= self.idle_s:
            self.conn.close()
        else:
            event.container.schedule(0.1, self)


def drain_address(url: str, address: str, idle_s: float = 2.0) -> list[int]:
    """Receive (and accept) what is left at ``address``; the message numbers, once nothing came for ``idle_s``."""
    handler = _Drain(url, address, idle_s)
    Container(handler).run()
    return handler.ids


def _receiver_states(procs: Sequence[Any], query: LogQuery) -> str:
    return ", ".join(
        f"#{i} durable {p.durable} planned {p.status.planned.value} read to {query.offsets[i]} alive {p.process.is_alive()} error {p.status.error!r}"
        for i, p in enumerate(procs)
    )


def kafka_count(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` (sum over its partitions of high - low watermark)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-count-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10)
        total = 0
        for partition in meta.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


# --- the soak ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SideResult:
    """One load: what its sender sent and had accepted, and what arrived at the far end."""

    name: str
    sent: int
    accepted: int
    failed: int
    arrived: int  # distinct messages in the ingest log / records in the Kafka topic
    duplicates: int | None  # None where not checked (Kafka: counted only)
    connections: int
    errors: int
    seconds: float  # of load
    notes: str = ""  # what went wrong, if anything

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class SoakResult:
    seconds: float
    interval: float
    receivers: int
    size: int
    ingest: SideResult
    bridge: SideResult
    samples: dict[str, list[Sample]]
    flatness: dict[str, Flatness]
    log_bytes_max: int
    segment_bytes: int
    aborted: str = ""  # why the load stopped early (a process under load died), if it did

    @property
    def flat(self) -> bool:
        return all(f.flat for f in self.flatness.values())

    @property
    def complete(self) -> bool:
        """Every message sent was accepted and arrived, once."""
        return all(
            s.failed == 0 and s.accepted == s.sent and s.arrived == s.accepted and not s.duplicates for s in (self.ingest, self.bridge)
        )

    def report(self) -> str:
        lines = [
            f"soak: {self.seconds:.0f} s of load, {self.size}-byte bodies, {self.receivers} ingest receiver(s), "
            f"samples every {self.interval:g} s, {os.cpu_count()} cores",
        ]
        for side, where in ((self.ingest, "in the log"), (self.bridge, "in Kafka")):
            dups = f", {side.duplicates} duplicates" if side.duplicates is not None else ""
            lines.append(
                f"  {side.name:14s} sent {side.sent:>10,}  accepted {side.accepted:>10,}  failed {side.failed}  "
                f"{where} {side.arrived:>10,}{dups}  {side.rate:8,.0f} msg/s  ({side.connections} connection(s), {side.errors} errors)"
            )
            if side.notes:
                lines.append(f"    !! {side.notes}")
        lines.append(f"  ingest log on disk at most {self.log_bytes_max / MB:.1f} MB (segments of {self.segment_bytes / MB:g} MB, trimmed on commit)")
        lines.append(f"  {'process':10s} {'samples':>7s} {'RSS first':>10s} {'RSS last':>10s} {'allowed':>9s} {'trend':>12s} {'fds':>9s}  verdict")
        for name, f in self.flatness.items():
            lines.append(
                f"  {name:10s} {f.samples:>7d} {f.rss_first / MB:>7.1f} MB {f.rss_last / MB:>7.1f} MB {'+' + format(f.rss_allowed / MB, '.0f'):>6s} MB "
                f"{f.rss_slope * 60 / MB:>+6.2f} MB/min {f'{f.fd_min}..{f.fd_max}':>9s}  {f.reason}"
            )
        lines.append(f"  rule: {RULE}")
        if self.aborted:
            lines.append(f"  ABORTED {self.aborted}")
        lines.append(f"  verdict: {'flat' if self.flat else 'NOT flat'}; {'every message arrived' if self.complete else 'messages MISSING or failed'}")
        return "\n".join(lines)


def _log_bytes(folders: Sequence[Path]) -> int:
    total = 0
    for folder in folders:
        for path in folder.glob("*.wal"):
            try:
                total += path.stat().st_size
            except FileNotFoundError:  # trimmed meanwhile
                pass
    return total


def run(
    amqp_url: str,
    kafka_bootstrap: str,
    seconds: float,
    workdir: Path,
    *,
    receivers: int = 2,
    size: int = 100,
    window: int = 1000,
    backlog: int = 10_000,
    rate: float = 0.0,
    churn: int = 1000,
    segment_bytes: int = 4 * MB,
    interval: float = 1.0,
    progress: Callable[[str], None] | None = None,
    progress_every: float = 10.0,
) -> SoakResult:
    """Run the soak for ``seconds`` of load (plus start-up and drain); see the module docstring."""
    from pyspark_amqp.ingest import IngestProcess, IngestSpec
    from pyspark_amqp.options import parse_source_options
    from pyspark_amqp.source import LogPartition

    from bench.bench_bridge import start_bridge

    run_id = uuid.uuid4().hex[:6]
    address, topic = f"soak-ingest-{run_id}", f"soak-bridge-{run_id}"
    options = parse_source_options(
        {"url": amqp_url, "address": address, "logDir": str(workdir / "log"), "receivers": str(receivers), "logSegmentBytes": str(segment_bytes)}
    )
    procs = [
        IngestProcess(
            IngestSpec(
                connection=options.connection,
                address=part.address,
                log_folder=part.folder(options.log_dir),
                credit=options.credit,
                max_buffered_messages=options.max_buffered_messages,
                at_most_once=options.at_most_once,
                segment_bytes=options.log_segment_bytes,
                link_name=f"soak-{part.key}-{run_id}",
            )
        )
        for part in (LogPartition(address, i) for i in range(receivers))
    ]
    bridge: Any = None
    senders: list[LoadSender] = []
    query: LogQuery | None = None
    sampler: Sampler | None = None
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.wait_attached(60)
        bridge, bridge_port, _ = start_bridge(kafka_bootstrap)
        ingest_sender = LoadSender(SenderSpec(amqp_url, address, size, True, window, rate, 0))
        bridge_url = f"amqp://127.0.0.1:{bridge_port}"
        bridge_senders = [LoadSender(SenderSpec(bridge_url, topic, size, False, window, rate, 0))]
        if churn:
            bridge_senders.append(LoadSender(SenderSpec(bridge_url, topic, size, False, window, rate, churn)))
        senders = [ingest_sender, *bridge_senders]
        query = LogQuery(procs, ingest_sender.status.gate, backlog)
        pids = {"bridge": bridge.pid, **{f"ingest-{i}": p.process.pid for i, p in enumerate(procs)}}
        folders = [p.spec.log_folder for p in procs]
        sampler = Sampler(pids, interval, extra=lambda: _log_bytes(folders))

        query.start()
        for sender in senders:
            sender.start()
        sampler.start()
        t0 = time.monotonic()
        deadline = t0 + seconds
        aborted = ""
        while (left := deadline - time.monotonic()) > 0:
            sampler.halt.wait(min(left, progress_every))  # the load's duration, not a synchronisation
            aborted = _failure(bridge, procs, senders, query, sampler)
            if aborted:  # stop the load, but still drain and count what got where
                aborted = f"after {time.monotonic() - t0:.0f} s: {aborted}"
                if progress is not None:
                    progress(f"  ABORTED {aborted}")
                break
            if progress is not None:
                progress(_progress_line(time.monotonic() - t0, ingest_sender, bridge_senders, sampler))
        load_s = time.monotonic() - t0
        sampler.halt.set()
        sampler.join()

        for sender in senders:
            sender.status.stop.set()
        for sender in senders:
            sender.stop()
        accepted = ingest_sender.count(ACCEPTED)
        query.target = accepted
        query.caught_up.wait(30)  # the query's next triggers read the rest
        query.halt.set()
        query.join(30)
        notes = []
        if query.unique < accepted:
            notes.append(f"after 30 s the query had {query.unique:,} of {accepted:,}; receivers: {_receiver_states(procs, query)}")
        for proc in procs:
            proc.stop()
        query.trigger()  # what the receivers made durable on their way out
        if query.error is not None:
            raise RuntimeError(f"the log query failed: {query.error!r}") from query.error
        if query.unique < accepted:
            absent = query.absent(ingest_sender.count(SENT))
            at_broker = drain_address(amqp_url, address)
            notes.append(
                f"{len(absent)} not in the log (first {absent[:10]}); {len(at_broker)} left at the broker "
                f"(first {sorted(at_broker)[:10]}); of the absent, at the broker: {len(set(absent) & set(at_broker))}"
            )
        bridge.terminate()
        bridge.wait(30)

        bridge_accepted = _total(bridge_senders, ACCEPTED)
        in_kafka = kafka_count(kafka_bootstrap, topic)
        settle_by = time.monotonic() + 30
        while in_kafka < bridge_accepted and time.monotonic() < settle_by:
            time.sleep(0.2)
            in_kafka = kafka_count(kafka_bootstrap, topic)
        ingest = SideResult(
            "source ingest",
            ingest_sender.count(SENT),
            accepted,
            ingest_sender.count(FAILED),
            query.unique,
            query.duplicates,
            ingest_sender.count(CONNECTIONS),
            ingest_sender.count(ERRORS),
            load_s,
            "; ".join(notes),
        )
        bridged = SideResult(
            "bridge",
            _total(bridge_senders, SENT),
            bridge_accepted,
            _total(bridge_senders, FAILED),
            in_kafka,
            None,
            _total(bridge_senders, CONNECTIONS),
            _total(bridge_senders, ERRORS),
            load_s,
        )
        return SoakResult(
            seconds=load_s,
            interval=interval,
            receivers=receivers,
            size=size,
            ingest=ingest,
            bridge=bridged,
            samples=sampler.samples,
            flatness={name: flatness(s) for name, s in sampler.samples.items()},
            log_bytes_max=max(sampler.extra_samples, default=0),
            segment_bytes=segment_bytes,
            aborted=aborted,
        )
    finally:
        if sampler is not None:
            sampler.halt.set()
        for sender in senders:
            if sender.process.is_alive():
                sender.process.kill()
        if query is not None:
            query.halt.set()
        for proc in procs:
            if proc.process.is_alive():
                proc.stop()
        if bridge is not None and bridge.poll() is None:
            bridge.kill()
            bridge.wait(10)


def _failure(bridge: Any, procs: Sequence[Any], senders: Sequence[LoadSender], query: LogQuery, sampler: Sampler) -> str:
    """What died during the soak, or ""."""
    if bridge.poll() is not None:
        return f"the bridge exited with {bridge.returncode}"
    for i, proc in enumerate(procs):
        if not proc.process.is_alive():
            return f"ingest receiver {i} exited with {proc.process.exitcode} {proc.status.error}".rstrip()
    for sender in senders:
        if not sender.process.is_alive():
            return f"the sender to {sender.spec.address} exited with {sender.process.exitcode}"
    if query.error is not None:
        return f"the log query failed: {query.error!r}"
    if sampler.gone:
        return f"processes gone: {sampler.gone}"
    return ""


def _total(senders: Sequence[LoadSender], which: int) -> int:
    return sum(s.count(which) for s in senders)


def _progress_line(elapsed: float, ingest: LoadSender, bridge: Sequence[LoadSender], sampler: Sampler) -> str:
    last = {name: s[-1] for name, s in sampler.samples.items() if s}
    procs = "  ".join(f"{name} {s.rss / MB:.0f} MB {s.fds} fds" for name, s in last.items())
    ingested, bridged = ingest.count(ACCEPTED), _total(bridge, ACCEPTED)
    return (
        f"  {elapsed:5.0f} s  ingest {ingested:>9,} ({ingested / elapsed:6,.0f}/s)  "
        f"bridge {bridged:>9,} ({bridged / elapsed:6,.0f}/s, {_total(bridge, CONNECTIONS)} conns)  | {procs}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    parser.add_argument("--seconds", type=float, default=300.0, help="seconds of load (default 300)")
    parser.add_argument("--receivers", type=int, default=2, help="ingest receiver processes (default 2)")
    parser.add_argument("--size", type=int, default=100, help="message body bytes (default 100)")
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s per sender; 0: as fast as it goes (default)")
    parser.add_argument("--window", type=int, default=1000, help="unsettled messages per sender (default 1000)")
    parser.add_argument("--backlog", type=int, default=10_000, help="how far the ingest sender may run ahead of the query")
    parser.add_argument("--churn", type=int, default=1000, help="second bridge sender: a new connection every N messages (0: none)")
    parser.add_argument("--segment-mb", type=float, default=4.0, help="ingest log segment size (default 4 MB, to roll often)")
    parser.add_argument("--interval", type=float, default=1.0, help="sampling interval, s")
    args = parser.parse_args(argv)
    from bench.common import services

    with services() as (url, kafka), tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        print(f"soak: {args.seconds:.0f} s against {url} and Kafka {kafka}; progress every 10 s", flush=True)
        result = run(
            url,
            kafka,
            args.seconds,
            Path(tmp),
            receivers=args.receivers,
            size=args.size,
            window=args.window,
            backlog=args.backlog,
            rate=args.rate,
            churn=args.churn,
            segment_bytes=int(args.segment_mb * MB),
            interval=args.interval,
            progress=lambda line: print(line, flush=True),
        )
    print(result.report(), flush=True)
    return 0 if result.flat and result.complete and not result.aborted else 1


if __name__ == "__main__":
    sys.exit(main())
