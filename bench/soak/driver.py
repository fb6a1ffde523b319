"""The soak itself: start the processes under load, run the load for its duration, wind down and count.

``run`` is what ``python -m bench.soak`` and the test call; the steps are separate functions so that
each says what it waits for. Whatever happens, every process started is stopped (``_Rig.stop_all``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.soak.arrivals import LogQuery, drain_address, kafka_count, log_bytes, receiver_states
from bench.soak.load import ACCEPTED, CONNECTIONS, ERRORS, FAILED, SENT, LoadSender, SenderSpec, total
from bench.soak.report import SideResult, SoakResult
from bench.soak.sampling import MB, Sampler, flatness


@dataclass
class _Rig:
    """Everything the soak started, so that it can all be stopped however the soak ends."""

    procs: list[Any]  # pyspark_amqp.ingest.IngestProcess, one per receiver
    bridge: Any = None  # the bridge's subprocess.Popen
    ingest_sender: LoadSender | None = None
    bridge_senders: list[LoadSender] = field(default_factory=list)
    query: LogQuery | None = None
    sampler: Sampler | None = None

    @property
    def senders(self) -> list[LoadSender]:
        return ([self.ingest_sender] if self.ingest_sender is not None else []) + self.bridge_senders

    def stop_all(self) -> None:
        """Kill what is still running (a no-op after an orderly wind-down)."""
        if self.sampler is not None:
            self.sampler.halt.set()
        for sender in self.senders:
            if sender.process.is_alive():
                sender.process.kill()
        if self.query is not None:
            self.query.halt.set()
        for proc in self.procs:
            if proc.process.is_alive():
                proc.stop()
        if self.bridge is not None and self.bridge.poll() is None:
            self.bridge.kill()
            self.bridge.wait(10)


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
    """Run the soak for ``seconds`` of load (plus start-up and drain); see ``bench.soak``."""
    run_id = uuid.uuid4().hex[:6]
    address, topic = f"soak-ingest-{run_id}", f"soak-bridge-{run_id}"
    rig = _Rig(_ingest_processes(amqp_url, address, workdir, receivers, segment_bytes, run_id))
    try:
        _start(rig, amqp_url, kafka_bootstrap, address, topic, size, window, backlog, rate, churn, interval)
        load_s, aborted = _apply_load(rig, seconds, progress, progress_every)
        _stop_senders(rig)
        ingest = _ingest_result(rig, amqp_url, address, load_s)
        bridged = _bridge_result(rig, kafka_bootstrap, topic, load_s)
        sampler = rig.sampler
        assert sampler is not None
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
        rig.stop_all()


def _ingest_processes(amqp_url: str, address: str, workdir: Path, receivers: int, segment_bytes: int, run_id: str) -> list[Any]:
    """The amqp source's ingest receivers for ``address``, configured through the source's own options (not started)."""
    from pyspark_amqp.ingest import IngestProcess, IngestSpec
    from pyspark_amqp.options import parse_source_options
    from pyspark_amqp.source import LogPartition

    options = parse_source_options(
        {
            "url": amqp_url,
            "address": address,
            "logDir": str(workdir / "log"),
            "receivers": str(receivers),
            "logSegmentBytes": str(segment_bytes),
        }
    )
    return [
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


def _start(
    rig: _Rig,
    amqp_url: str,
    kafka_bootstrap: str,
    address: str,
    topic: str,
    size: int,
    window: int,
    backlog: int,
    rate: float,
    churn: int,
    interval: float,
) -> None:
    """Start the receivers (attached), the bridge (ready), then the query, the senders and the sampler."""
    from bench.bench_bridge import start_bridge

    for proc in rig.procs:
        proc.start()
    for proc in rig.procs:
        proc.wait_attached(60)
    rig.bridge, bridge_port, _ = start_bridge(kafka_bootstrap)
    rig.ingest_sender = LoadSender(SenderSpec(amqp_url, address, size, True, window, rate, 0))
    bridge_url = f"amqp://127.0.0.1:{bridge_port}"
    rig.bridge_senders = [LoadSender(SenderSpec(bridge_url, topic, size, False, window, rate, 0))]
    if churn:
        rig.bridge_senders.append(LoadSender(SenderSpec(bridge_url, topic, size, False, window, rate, churn)))
    rig.query = LogQuery(rig.procs, rig.ingest_sender.status.gate, backlog)
    pids = {"bridge": rig.bridge.pid, **{f"ingest-{i}": p.process.pid for i, p in enumerate(rig.procs)}}
    folders = [p.spec.log_folder for p in rig.procs]
    rig.sampler = Sampler(pids, interval, extra=lambda: log_bytes(folders))

    rig.query.start()
    for sender in rig.senders:
        sender.start()
    rig.sampler.start()


def _apply_load(rig: _Rig, seconds: float, progress: Callable[[str], None] | None, progress_every: float) -> tuple[float, str]:
    """Let the load run for ``seconds``, or until a process under load dies; then stop sampling.

    Returns the seconds of load and why it stopped early ("" if it did not).
    """
    sampler = rig.sampler
    assert sampler is not None
    t0 = time.monotonic()
    deadline = t0 + seconds
    aborted = ""
    while (left := deadline - time.monotonic()) > 0:
        sampler.halt.wait(min(left, progress_every))  # the load's duration, not a synchronisation
        aborted = _failure(rig)
        if aborted:  # stop the load, but still drain and count what got where
            aborted = f"after {time.monotonic() - t0:.0f} s: {aborted}"
            if progress is not None:
                progress(f"  ABORTED {aborted}")
            break
        if progress is not None:
            progress(_progress_line(time.monotonic() - t0, rig, sampler))
    load_s = time.monotonic() - t0
    sampler.halt.set()
    sampler.join()
    return load_s, aborted


def _stop_senders(rig: _Rig) -> None:
    """Stop every sender at once, then wait for each to have every message it sent settled."""
    for sender in rig.senders:
        sender.status.stop.set()
    for sender in rig.senders:
        sender.stop()


def _ingest_result(rig: _Rig, amqp_url: str, address: str, load_s: float) -> SideResult:
    """Let the query read what was accepted, stop the receivers, and check off every message in the log.

    What is absent from the log is looked for at the broker, and the notes say where it was.
    """
    query, sender = rig.query, rig.ingest_sender
    assert query is not None and sender is not None
    accepted = sender.count(ACCEPTED)
    query.target = accepted
    query.caught_up.wait(30)  # the query's next triggers read the rest
    query.halt.set()
    query.join(30)
    notes = []
    if query.unique < accepted:
        notes.append(f"after 30 s the query had {query.unique:,} of {accepted:,}; receivers: {receiver_states(rig.procs, query)}")
    for proc in rig.procs:
        proc.stop()
    query.trigger()  # what the receivers made durable on their way out
    if query.error is not None:
        raise RuntimeError(f"the log query failed: {query.error!r}") from query.error
    if query.unique < accepted:
        absent = query.absent(sender.count(SENT))
        at_broker = drain_address(amqp_url, address)
        notes.append(
            f"{len(absent)} not in the log (first {absent[:10]}); {len(at_broker)} left at the broker "
            f"(first {sorted(at_broker)[:10]}); of the absent, at the broker: {len(set(absent) & set(at_broker))}"
        )
    return SideResult(
        "source ingest",
        sender.count(SENT),
        accepted,
        sender.count(FAILED),
        query.unique,
        query.duplicates,
        sender.count(CONNECTIONS),
        sender.count(ERRORS),
        load_s,
        "; ".join(notes),
    )


def _bridge_result(rig: _Rig, kafka_bootstrap: str, topic: str, load_s: float) -> SideResult:
    """Stop the bridge (SIGTERM: it drains), then count the topic's records until they match what was accepted (30 s at most)."""
    rig.bridge.terminate()
    rig.bridge.wait(30)
    senders = rig.bridge_senders
    accepted = total(senders, ACCEPTED)
    in_kafka = kafka_count(kafka_bootstrap, topic)
    settle_by = time.monotonic() + 30
    while in_kafka < accepted and time.monotonic() < settle_by:
        time.sleep(0.2)
        in_kafka = kafka_count(kafka_bootstrap, topic)
    return SideResult(
        "bridge",
        total(senders, SENT),
        accepted,
        total(senders, FAILED),
        in_kafka,
        None,
        total(senders, CONNECTIONS),
        total(senders, ERRORS),
        load_s,
    )


def _failure(rig: _Rig) -> str:
    """What died during the soak, or ""."""
    bridge, query, sampler = rig.bridge, rig.query, rig.sampler
    if bridge.poll() is not None:
        return f"the bridge exited with {bridge.returncode}"
    for i, proc in enumerate(rig.procs):
        if not proc.process.is_alive():
            return f"ingest receiver {i} exited with {proc.process.exitcode} {proc.status.error}".rstrip()
    for sender in rig.senders:
        if not sender.process.is_alive():
            return f"the sender to {sender.spec.address} exited with {sender.process.exitcode}"
    if query is not None and query.error is not None:
        return f"the log query failed: {query.error!r}"
    if sampler is not None and sampler.gone:
        return f"processes gone: {sampler.gone}"
    return ""


def _progress_line(elapsed: float, rig: _Rig, sampler: Sampler) -> str:
    last = {name: s[-1] for name, s in sampler.samples.items() if s}
    procs = "  ".join(f"{name} {s.rss / MB:.0f} MB {s.fds} fds" for name, s in last.items())
    ingest: Sequence[LoadSender] = [rig.ingest_sender] if rig.ingest_sender is not None else []
    ingested, bridged = total(ingest, ACCEPTED), total(rig.bridge_senders, ACCEPTED)
    return (
        f"  {elapsed:5.0f} s  ingest {ingested:>9,} ({ingested / elapsed:6,.0f}/s)  "
        f"bridge {bridged:>9,} ({bridged / elapsed:6,.0f}/s, {total(rig.bridge_senders, CONNECTIONS)} conns)  | {procs}"
    )
