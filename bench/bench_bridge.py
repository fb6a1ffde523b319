"""Benchmark of the AMQP<->Kafka bridge against baselines measured in the same run.

    python -m bench.bench_bridge [--messages 20000] [--size 100] [--linger-ms 0,2,5] [--interleave N]
                                 [--other-bridge-url URL [--other-bridge-pid PID]] [--json FILE]

Uses the running Kafka when ``KAFKA_BOOTSTRAP`` is set (``make up``), else starts a private
one for the run (``bench.common.services``). Measures, each contestant as its own process:

* AMQP -> Kafka through the bridge (unsettled sender, acks=all) vs a raw proton receive
  loop that accepts at once (the Python event-loop ceiling) fed by the same sender, and vs
  confluent-kafka producing the same messages directly;
* the CPU seconds the bridge process used per message on that path, vs the raw loop's;
* the added latency (p50/p99, one message in flight) vs the raw loop's;
* two worker processes (``--workers 2``) vs one, both fed by two sender processes;
* Kafka -> AMQP through the bridge vs a raw proton send loop (a listener that sends
  messages of the shape a bridge sends, annotations included, as fast as the same receiver
  gives credit; bare bodies too, as ``raw_send_plain``), and vs a direct consumer;
* the bridge's peak RSS; with ``--linger-ms``, rate and latency for each producer linger;
* with ``--other-bridge-url`` (and ``--other-bridge-pid``), a bridge this benchmark did not
  start, on the same Kafka, measured the same way: how the Strimzi AMQP bridge is compared.

``--json FILE`` writes every figure and ratio, with the baseline beside it (bench.results).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

from amqp_kafka_bridge.readiness import BridgeNotReady, wait_until_ready
from confluent_kafka import Consumer, Producer, TopicPartition
from proton import Message, symbol
from proton.handlers import MessagingHandler
from proton.reactor import Container

from bench.common import cpu_capped, cpu_seconds, process_tree
from bench.lean_sender import lean_send
from bench.results import Results, add_json_argument

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RawReceiver(MessagingHandler):
    """The baseline: a proton listener that accepts every message as soon as it is complete."""

    def __init__(self, url: str) -> None:
        super().__init__(prefetch=1000, auto_accept=True)
        self.url = url

    def on_start(self, event: Any) -> None:
        event.container.listen(self.url)


class RawSource(MessagingHandler):
    """The outbound baseline: a proton listener that sends ``count`` messages to whoever attaches, as credit allows.

    ``bridge_shaped``: each message carries what a bridge adds to a Kafka record (topic,
    partition and offset annotations), so a receiver decodes as much as it does from a bridge.
    """

    def __init__(self, url: str, count: int, size: int, bridge_shaped: bool = True) -> None:
        super().__init__()
        self.url, self.count, self.body, self.bridge_shaped = url, count, b"x" * size, bridge_shaped
        self.sent = 0

    def on_start(self, event: Any) -> None:
        event.container.listen(self.url)

    def on_link_opening(self, event: Any) -> None:
        if event.link.is_sender:
            event.link.source.copy(event.link.remote_source)

    def on_sendable(self, event: Any) -> None:
        sender = event.sender
        while sender.credit and self.sent < self.count:
            annotations = {TOPIC: sender.source.address, PARTITION: 0, OFFSET: self.sent} if self.bridge_shaped else None
            sender.send(Message(body=self.body, inferred=True, annotations=annotations))
            self.sent += 1


TOPIC, PARTITION, OFFSET = (symbol(f"x-opt-bridge.{name}") for name in ("topic", "partition", "offset"))


class Sender(MessagingHandler):
    """Sends ``count`` messages unsettled, at most ``window`` unacknowledged; records send->accept latency."""

    def __init__(self, url: str, address: str, count: int, size: int, window: int) -> None:
        super().__init__()
        self.url, self.address, self.count, self.window = url, address, count, window
        self.body = b"x" * size
        self.sent = self.accepted = 0
        self.started: dict[bytes, float] = {}
        self.latencies: list[float] = []
        self.t0 = self.t1 = 0.0

    def on_start(self, event: Any) -> None:
        conn = event.container.connect(self.url, reconnect=False)
        event.container.create_sender(conn, self.address)

    def on_sendable(self, event: Any) -> None:
        if not self.t0:
            self.t0 = time.perf_counter()
        sender = event.sender
        while sender.credit and self.sent < self.count and self.sent - self.accepted < self.window:
            dlv = sender.send(Message(body=self.body, inferred=True))
            self.started[dlv.tag] = time.perf_counter()
            self.sent += 1

    def on_settled(self, event: Any) -> None:
        now = time.perf_counter()
        self.latencies.append(now - self.started.pop(event.delivery.tag))
        self.accepted += 1
        if self.accepted == self.count:
            self.t1 = now
            event.connection.close()
        else:
            self.on_sendable(event)


class Receiver(MessagingHandler):
    """Reads ``count`` messages (prefetch 1000, accepted); detaches, then closes the connection.

    Detaching first is what a polite client does, and what the Strimzi bridge needs: it never
    answers a connection close while a receiving link is still attached.
    """

    def __init__(self, url: str, address: str, count: int) -> None:
        super().__init__(prefetch=1000)
        self.url, self.address, self.count = url, address, count
        self.received = 0
        self.t0 = self.t1 = self.first = 0.0

    def on_start(self, event: Any) -> None:
        conn = event.container.connect(self.url, reconnect=False)
        event.container.create_receiver(conn, self.address)
        self.t0 = time.perf_counter()

    def on_message(self, event: Any) -> None:
        if not self.received:
            self.first = time.perf_counter()
        self.received += 1
        if self.received == self.count:
            self.t1 = time.perf_counter()
            event.receiver.close()

    def on_link_closed(self, event: Any) -> None:
        event.connection.close()


def send(url: str, address: str, count: int, size: int, window: int = 10**9) -> Sender:
    handler = Sender(url, address, count, size, window)
    Container(handler).run()
    return handler


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} not open")


def start_bridge(
    kafka: str, workers: int = 1, linger_ms: float | None = None, src: Path | None = None
) -> tuple[subprocess.Popen[bytes], int, int]:
    """The bridge in server mode on free ports, ready; ``linger_ms`` overrides the producer's default linger.

    ``src``: import ``amqp_kafka_bridge`` from this folder instead of the installed one (a
    ``bridge/src`` of another commit), to measure a before and an after in one run.
    """
    amqp_port, http_port = free_port(), free_port()
    cmd = [
        sys.executable,
        "-m",
        "amqp_kafka_bridge",
        "--amqp-port",
        str(amqp_port),
        "--http-port",
        str(http_port),
        "--kafka-bootstrap",
        kafka,
        "--log-level",
        "WARNING",
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*([str(src)] if src else []), str(ROOT)]))
    if linger_ms is not None:
        env["BRIDGE_KAFKA_PRODUCER__LINGER_MS"] = f"{linger_ms:g}"
    proc = subprocess.Popen([*cmd, "--workers", str(workers)], cwd=ROOT, env=env)
    try:
        # with --workers the supervisor serves http_port and is ready once every worker is
        wait_until_ready(f"http://127.0.0.1:{http_port}", 30, proc)
    except BridgeNotReady:
        proc.kill()
        raise
    return proc, amqp_port, http_port


def parallel_send(url: str, topic: str, count: int, size: int, senders: int) -> float:
    """``senders`` sender processes (one connection each) share ``count`` messages; the aggregate msg/s."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench.bench_bridge import send; "
        f"s = send({url!r}, {topic!r}, {count // senders}, {size}); print(s.t0, s.t1)"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(senders)]
    spans = [tuple(map(float, p.communicate(timeout=300)[0].split())) for p in procs]
    return (count // senders) * senders / (max(t1 for _, t1 in spans) - min(t0 for t0, _ in spans))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_own_process(code: str) -> subprocess.Popen[bytes]:
    """Run ``code`` (a baseline) in a Python process of its own, with the repository importable."""
    return subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); {code}"], cwd=ROOT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class Run:
    """What every measurement of one benchmark run shares."""

    kafka: str
    count: int  # messages per rate measurement
    size: int  # body bytes
    latency_n: int  # messages sent one at a time for the latency figures
    run_id: str  # makes this run's topics and groups its own


def measure_raw(res: Results, run: Run) -> None:
    """The raw proton receive loop: rate, CPU per message and one-in-flight latency, with the benchmark's sender."""
    port = free_port()
    raw = in_own_process(
        f"from bench.bench_bridge import RawReceiver; from proton.reactor import Container; "
        f"Container(RawReceiver('amqp://127.0.0.1:{port}')).run()"
    )
    try:
        wait_port(port, raw)
        url = f"amqp://127.0.0.1:{port}"
        send(url, "bench", 100, run.size)
        cpu0 = cpu_seconds(raw.pid)
        s = send(url, "bench", run.count, run.size)
        res.figure("raw_receive_cpu_us_per_msg", (cpu_seconds(raw.pid) - cpu0) / run.count * 1e6, "us/msg")
        res.figure("raw_receive", run.count / (s.t1 - s.t0), "msg/s")
        lat = send(url, "bench", run.latency_n, run.size, window=1).latencies
        res.figure("raw_p50", pct(lat, 0.5) * 1e3, "ms")
        res.figure("raw_p99", pct(lat, 0.99) * 1e3, "ms")
        res.figure("raw_receive_lean", lean_rate(url, "bench", run), "msg/s", LEAN)
    finally:
        stop(raw)


def measure_raw_source(res: Results, run: Run, bridge_shaped: bool = True) -> None:
    """The raw proton send loop, read by the same receiver the bridge's outbound path is read by.

    ``bridge_shaped``: the loop sends what a bridge sends for a Kafka record (its annotations
    too), so the receiver decodes the same bytes in both (``raw_send``); else a bare body
    (``raw_send_plain``, the figure before the shapes were matched).
    """
    port = free_port()
    raw = in_own_process(
        f"from bench.bench_bridge import RawSource; from proton.reactor import Container; "
        f"Container(RawSource('amqp://127.0.0.1:{port}', {run.count}, {run.size}, {bridge_shaped})).run()"
    )
    try:
        wait_port(port, raw)
        r = Receiver(f"amqp://127.0.0.1:{port}", "bench", run.count)
        Container(r).run()
        res.figure("raw_send" if bridge_shaped else "raw_send_plain", (run.count - 1) / (r.t1 - r.first), "msg/s")
    finally:
        stop(raw)


def direct_produce(res: Results, run: Run, topic: str) -> None:
    producer = Producer({"bootstrap.servers": run.kafka, "enable.idempotence": True, "acks": "all", "linger.ms": 2})
    producer.produce(topic, b"warm-up")
    producer.flush(30)
    body = b"x" * run.size
    t0 = time.perf_counter()
    for _ in range(run.count):
        while True:
            try:
                producer.produce(topic, body)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(60)
    res.figure("direct_produce", run.count / (time.perf_counter() - t0), "msg/s")


def direct_produce_latency(res: Results, run: Run, topic: str) -> None:
    """One record in flight, produce -> acks=all report, linger 0: what Kafka alone adds, the floor under the bridge's latency."""
    producer = Producer({"bootstrap.servers": run.kafka, "enable.idempotence": True, "acks": "all", "linger.ms": 0})
    producer.produce(topic, b"warm-up")
    producer.flush(30)
    body, lat = b"x" * run.size, []
    for _ in range(run.latency_n):
        t0 = time.perf_counter()
        producer.produce(topic, body)
        producer.flush(10)
        lat.append(time.perf_counter() - t0)
    res.figure("direct_produce_p50", pct(lat, 0.5) * 1e3, "ms", "one in flight, linger.ms=0, acks=all")
    res.figure("direct_produce_p99", pct(lat, 0.99) * 1e3, "ms")


def direct_consume(res: Results, run: Run, topic: str, group: str) -> None:
    consumer = Consumer({"bootstrap.servers": run.kafka, "group.id": group, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 1)])  # skip the warm-up record, as the bridge read it too
    got, t0 = 0, time.perf_counter()
    while got < run.count - 1:
        got += sum(1 for m in consumer.consume(1000, 1.0) if m.error() is None)
    res.figure("direct_consume", got / (time.perf_counter() - t0), "msg/s")
    consumer.close()


def _cpu(pid: int | None) -> float:
    """CPU seconds ``pid`` used so far; NaN for a process the benchmark cannot see."""
    return cpu_seconds(pid) if pid else float("nan")


LEAN = "with the lean sender (bench.lean_sender, ~7 us/msg): the receiving side's capacity, not the sender's"


def lean_rate(url: str, address: str, run: Run) -> float:
    """msg/s of ``3 * count`` messages from the lean sender (three times as many: it is ~10x as fast as ``send``)."""
    count = 3 * run.count
    s = lean_send(url, address, count, run.size)
    return count / (s.t1 - s.t0)


def into_kafka(url: str, run: Run, topic: str, pid: int | None) -> dict[str, float]:
    """AMQP -> Kafka through the bridge at ``url``: ``count`` messages to ``topic``, then one-in-flight latency;
    CPU per message when the bridge's ``pid`` is known. Keys: ``in``, ``in_cpu_us_per_msg``, ``p50``, ``p99``,
    and ``in_lean`` (the rate with the lean sender)."""
    send(url, topic, 100, run.size)  # creates the topic, warms the producer
    cpu0 = _cpu(pid)
    s = send(url, topic, run.count, run.size)
    got = {"in_cpu_us_per_msg": (_cpu(pid) - cpu0) / run.count * 1e6, "in": run.count / (s.t1 - s.t0)}
    lat = send(url, topic, run.latency_n, run.size, window=1).latencies
    got["p50"], got["p99"] = pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3
    got["in_lean"] = lean_rate(url, topic, run)
    return got


def through_bridge(url: str, run: Run, topic: str, read_back: str, pid: int | None) -> dict[str, float]:
    """One bridge at ``url``, both directions: :func:`into_kafka`, then ``read_back`` (a
    ``topic/group.id/group`` address) read to the end. Adds ``out``, ``out_cpu_us_per_msg``, ``out_join``."""
    got = into_kafka(url, run, topic, pid)
    r = Receiver(url, read_back, run.count)
    cpu0 = _cpu(pid)
    Container(r).run()
    got["out_cpu_us_per_msg"] = (_cpu(pid) - cpu0) / run.count * 1e6
    got["out"] = (run.count - 1) / (r.t1 - r.first)
    got["out_join"] = r.first - r.t0
    return got


FIGURES = {
    "in": ("msg/s", None),
    "in_cpu_us_per_msg": ("us/msg", None),
    "in_lean": ("msg/s", LEAN),
    "p50": ("ms", None),
    "p99": ("ms", None),
    "out": ("msg/s", "steady state, after the group join"),
    "out_cpu_us_per_msg": ("us/msg", "includes the group join"),
    "out_join": ("s", "attach to first message (consumer group join)"),
}


def record_bridge(res: Results, run: Run, url: str, pid: int | None, direct_topic: str, name: str) -> None:
    """:func:`through_bridge` for the bridge at ``url``, recorded as ``<name>_in``, ``<name>_p50``, ... (and its peak RSS)."""
    topic = f"bench-{name}-{run.run_id}"
    for key, value in through_bridge(url, run, topic, f"{direct_topic}/group.id/{topic}", pid).items():
        res.figure(f"{name}_{key}", value, *FIGURES[key])
    if pid:
        res.figure(f"{name}_peak_rss", peak_rss_mb(pid), "MB")


def measure_bridge(res: Results, run: Run, direct_topic: str, name: str = "bridge", src: Path | None = None) -> None:
    """AMQP -> Kafka (rate, CPU per message, latency) and Kafka -> AMQP through one bridge process, default settings.

    Figures are named ``<name>_in``, ``<name>_p50``, ...; ``src`` as for :func:`start_bridge`.
    """
    bridge, amqp_port, _ = start_bridge(run.kafka, src=src)
    try:
        record_bridge(res, run, f"amqp://127.0.0.1:{amqp_port}", bridge.pid, direct_topic, name)
    finally:
        stop(bridge)


def measure_other(res: Results, run: Run, url: str, pid: int | None, direct_topic: str) -> None:
    """A bridge this benchmark did not start (``--other-bridge-url``, e.g. the Strimzi AMQP bridge), measured as
    :func:`measure_bridge` measures this one (``other_*``): same sender, receiver, Kafka, topics, addresses."""
    record_bridge(res, run, url, pid, direct_topic, "other")


def measure_ab(res: Results, run: Run, compare_src: Path, rounds: int, lingers: list[float] | None = None) -> None:
    """This bridge and the one in ``compare_src``, interleaved: both directions, CPU per message, latency.

    On a machine whose load swings, two bridges measured one after the other are not
    comparable; here they alternate, ``rounds`` times each, and the medians are recorded
    (``ab_<variant>_in``, ``_in_cpu_us_per_msg``, ``_p50``, ``_p99``, ``_out``,
    ``_out_cpu_us_per_msg``). Each round sends ``count`` messages to a fresh topic through
    the variant, measures one-in-flight latency, then reads the topic back through the same
    variant with a new consumer group. ``lingers`` adds variants of this bridge with those
    producer ``linger.ms`` values (``this_linger<ms>``).
    """
    variants: list[tuple[str, Path | None, float | None]] = [("this", None, None), ("compared", compare_src, None)]
    variants += [(f"this_linger{linger:g}", None, linger) for linger in lingers or []]
    keys = ("in", "in_cpu_us_per_msg", "p50", "p99", "out", "out_cpu_us_per_msg")
    seen: dict[str, dict[str, list[float]]] = {v[0]: {k: [] for k in keys} for v in variants}
    for round_ in range(rounds):
        for variant, src, linger in variants:
            bridge, amqp_port, _ = start_bridge(run.kafka, linger_ms=linger, src=src)
            try:
                topic = f"bench-ab-{variant}-{run.run_id}-{round_}"
                got = through_bridge(f"amqp://127.0.0.1:{amqp_port}", run, topic, f"{topic}/group.id/ab-{round_}", bridge.pid)
            finally:
                stop(bridge)
            for key in keys:
                seen[variant][key].append(got[key])
            print(f"  a/b round {round_ + 1}/{rounds} {variant}: in {got['in']:,.0f} msg/s, "
                  f"{got['in_cpu_us_per_msg']:.0f} us CPU/msg, p50 {got['p50']:.2f} ms, p99 {got['p99']:.2f} ms; "
                  f"out {got['out']:,.0f} msg/s, {got['out_cpu_us_per_msg']:.0f} us CPU/msg", flush=True)  # fmt: skip
    for variant, values in seen.items():
        for key in keys:
            res.figure(f"ab_{variant}_{key}", statistics.median(values[key]), FIGURES[key][0], f"median of {rounds}, interleaved")
    for other in [v[0] for v in variants if v[0] != "this"]:
        for key in keys:
            better = key in ("in", "out")
            res.ratio(f"ab_{key}_vs_{other}", f"ab_this_{key}", f"ab_{other}_{key}", higher_is_better=better)


def measure_interleaved(res: Results, run: Run, rounds: int, other: tuple[str, int | None] | None = None) -> None:
    """The bridge against the raw loops, alternated ``rounds`` times (medians): the targets' ratios on a noisy machine.

    One raw loop then one bridge measured once each, as ``run`` does, swing by 2x here when
    other work shares the cores; alternating them and taking medians of the ratios of each
    round's pair gives figures that hold (``ilv_*``). ``other`` (url, pid): a bridge this
    benchmark did not start joins each round (``ilv_other_*``).
    """
    baselines = {"in": "raw_receive", "in_lean": "raw_receive_lean", "p50": "raw_p50", "out": "raw_send"}
    sides = {"": "bridge", **({"other_": "other"} if other else {})}  # ratio prefix -> figure prefix
    keys = [*baselines.values(), *(f"{name}_{m}" for name in sides.values() for m in baselines)]
    pairs: dict[str, list[float]] = {f"{side}{m}": [] for side in sides for m in baselines}
    seen: dict[str, list[float]] = {k: [] for k in keys}
    direct_topic = f"bench-ilv-{run.run_id}"
    direct_produce(Results("scratch", {}), run, direct_topic)  # what the bridges' outbound paths read
    for round_ in range(rounds):
        one = Results("round", {})
        this_round = replace(run, run_id=f"{run.run_id}-{round_}")
        measure_raw(one, this_round)
        measure_raw_source(one, this_round)
        measure_bridge(one, this_round, direct_topic)
        if other:
            measure_other(one, this_round, *other, direct_topic)
        for key in keys:
            seen[key].append(one.value(key))
        for side, name in sides.items():
            for m, baseline in baselines.items():
                pairs[f"{side}{m}"].append(one.value(f"{name}_{m}") / one.value(baseline))
        line = ", ".join(f"{k} {v[-1]:.2f}x" for k, v in pairs.items())
        print(f"  interleaved round {round_ + 1}/{rounds} (vs the raw loops): {line}", flush=True)
    for key in keys:
        res.figure(f"ilv_{key}", statistics.median(seen[key]), "ms" if key.endswith("p50") else "msg/s", f"median of {rounds}")
    if other:
        lean = [b / o for b, o in zip(seen["bridge_in_lean"], seen["other_in_lean"], strict=True)]
        res.figure("ilv_in_lean_vs_other_ratio", statistics.median(lean), "x", f"median over {rounds} rounds of this/other")
    for key, values in pairs.items():
        res.figure(
            f"ilv_{key}_ratio", statistics.median(values), "x", f"median over {rounds} rounds of bridge/raw in the same round"
        )


def measure_workers(res: Results, run: Run, cpu_cap: float | None = None, senders: int = 4) -> None:
    """One worker and two under the same ``senders`` sender processes (so the comparison isolates the workers).

    Each sender is one connection; the supervisor hands each to the worker with the fewest
    open, so four split 2:2, and the busiest worker's share of the bridge's CPU is recorded
    (0.5: an even split). ``cpu_cap``: each worker is held to that fraction of a core
    (:func:`bench.common.cpu_capped`), so the workers are the limit even where the senders
    and Kafka fill the cores: the scaling a machine with a free core per worker would show.
    """
    tag = f"_cap{cpu_cap:g}" if cpu_cap else ""
    name = f"bridge_in_{senders}senders"
    for workers in (1, 2):
        bridge, amqp_port, _ = start_bridge(run.kafka, workers=workers)
        try:
            url = f"amqp://127.0.0.1:{amqp_port}"
            topic = f"bench-workers{workers}{tag}-{run.run_id}"
            send(url, topic, 100, run.size)
            pids = [p for p in process_tree(bridge.pid) if p != bridge.pid] if workers > 1 else [bridge.pid]
            with cpu_capped(pids, cpu_cap) if cpu_cap else contextlib.nullcontext():
                cpu0 = {pid: cpu_seconds(pid) for pid in pids}
                rate = parallel_send(url, topic, run.count, run.size, senders)
                used = {pid: cpu_seconds(pid) - cpu0[pid] for pid in pids}
        finally:
            stop(bridge)
        res.figure(f"{name}_{workers}worker{tag}", rate, "msg/s", f"each worker capped at {cpu_cap:g} core" if cpu_cap else None)
        res.figure(f"{name}_{workers}worker{tag}_cpu_us_per_msg", sum(used.values()) / run.count * 1e6, "us/msg")
        if workers > 1:
            share = max(used.values()) / max(sum(used.values()), 1e-9)
            res.figure(f"{name}_{workers}worker{tag}_busiest_share", share, "fraction", "0.5: connections split evenly")
    res.ratio(f"workers2_vs_workers1{tag}", f"{name}_2worker{tag}", f"{name}_1worker{tag}", target=1.6)


def measure_linger(res: Results, run: Run, lingers: list[float]) -> None:
    """Rate, CPU per message and one-in-flight latency for each producer ``linger.ms``: the trade behind the default."""
    for linger in lingers:
        bridge, amqp_port, _ = start_bridge(run.kafka, linger_ms=linger)
        try:
            got = into_kafka(f"amqp://127.0.0.1:{amqp_port}", run, f"bench-linger-{run.run_id}", bridge.pid)
            tag = f"linger{linger:g}ms"
            res.figure(f"bridge_in_{tag}_cpu_us_per_msg", got["in_cpu_us_per_msg"], "us/msg")
            res.figure(f"bridge_in_{tag}", got["in"], "msg/s")
            res.figure(f"bridge_p50_{tag}", got["p50"], "ms")
            res.figure(f"bridge_p99_{tag}", got["p99"], "ms")
            res.ratio(f"bridge_in_{tag}_vs_raw_receive", f"bridge_in_{tag}", "raw_receive")
            res.ratio(f"bridge_p50_{tag}_vs_raw", f"bridge_p50_{tag}", "raw_p50", target=1.5, higher_is_better=False)
        finally:
            stop(bridge)


@dataclass(frozen=True)
class Plan:
    """Which measurements a run makes (the command line's choices)."""

    lingers: list[float] = field(default_factory=list)
    compare_src: Path | None = None
    rounds: int = 3
    ab_only: bool = False
    interleave: int = 0
    other: tuple[str, int | None] | None = None  # (url, pid) of a bridge this benchmark did not start
    workers_cpu_cap: float | None = None  # also 1 vs 2 workers with each worker held to this fraction of a core
    workers_only: bool = False


def measure(res: Results, run: Run, plan: Plan) -> None:
    if plan.workers_only:
        measure_workers(res, run)
        if plan.workers_cpu_cap:
            measure_workers(res, run, plan.workers_cpu_cap)
        return
    if plan.compare_src is not None:
        ab_run = replace(run, latency_n=min(300, run.count))
        measure_ab(res, ab_run, plan.compare_src, plan.rounds, plan.lingers if plan.ab_only else None)
        if plan.ab_only:
            return
    if plan.interleave:
        measure_interleaved(res, run, plan.interleave, plan.other)
        return
    direct_topic = f"bench-direct-{run.run_id}"
    measure_raw(res, run)
    measure_raw_source(res, run)
    measure_raw_source(res, run, bridge_shaped=False)
    direct_produce(res, run, direct_topic)
    direct_produce_latency(res, run, f"bench-latency-{run.run_id}")
    measure_bridge(res, run, direct_topic)
    if plan.other:
        measure_other(res, run, *plan.other, direct_topic)
        for fig, better in (("in", True), ("in_lean", True), ("p50", False), ("p99", False), ("out", True)):
            res.ratio(f"bridge_{fig}_vs_other", f"bridge_{fig}", f"other_{fig}", higher_is_better=better)
        res.ratio("other_in_vs_raw_receive", "other_in", "raw_receive")
        res.ratio("other_in_lean_vs_raw_receive_lean", "other_in_lean", "raw_receive_lean")
        res.ratio("other_p50_vs_raw_p50", "other_p50", "raw_p50", higher_is_better=False)
        res.ratio("other_out_vs_raw_send", "other_out", "raw_send")
    if plan.compare_src is not None:
        measure_bridge(res, run, direct_topic, name="compared", src=plan.compare_src)
        for fig, better in (("in", True), ("in_cpu_us_per_msg", False), ("p50", False), ("p99", False), ("out", True)):
            res.ratio(f"bridge_{fig}_vs_compared", f"bridge_{fig}", f"compared_{fig}", higher_is_better=better)
        res.ratio("compared_in_vs_raw_receive", "compared_in", "raw_receive")
        res.ratio("compared_p50_vs_raw_p50", "compared_p50", "raw_p50", higher_is_better=False)
        res.ratio("compared_out_vs_raw_send", "compared_out", "raw_send")
    measure_workers(res, run)
    if plan.workers_cpu_cap:
        measure_workers(res, run, plan.workers_cpu_cap)
    direct_consume(res, run, direct_topic, f"bench-direct-{run.run_id}")
    if plan.lingers:
        measure_linger(res, run, plan.lingers)
    # The "done when" targets, each against its baseline from this run.
    res.ratio("bridge_in_vs_raw_receive", "bridge_in", "raw_receive", target=1.0)
    res.ratio("bridge_in_lean_vs_raw_receive_lean", "bridge_in_lean", "raw_receive_lean", target=1.0)
    res.ratio("bridge_in_vs_direct_produce", "bridge_in", "direct_produce")
    res.ratio(
        "bridge_in_cpu_vs_raw_receive_cpu", "bridge_in_cpu_us_per_msg", "raw_receive_cpu_us_per_msg", higher_is_better=False
    )
    res.ratio("bridge_p50_vs_raw_p50", "bridge_p50", "raw_p50", target=1.5, higher_is_better=False)
    res.ratio("bridge_p99_vs_raw_p99", "bridge_p99", "raw_p99", higher_is_better=False)
    res.ratio("bridge_p50_vs_direct_produce_p50", "bridge_p50", "direct_produce_p50", higher_is_better=False)
    res.ratio("bridge_out_vs_raw_send", "bridge_out", "raw_send", target=1.0)
    res.ratio("bridge_out_vs_raw_send_plain", "bridge_out", "raw_send_plain")
    res.ratio("bridge_out_vs_direct_consume", "bridge_out", "direct_consume")


def report(res: Results) -> str:
    f = {k: v["value"] for k, v in res.figures.items()}
    r = {k: v["value"] for k, v in res.ratios.items()}
    ab = [
        f"  interleaved a/b, median of {res.params.get('rounds')}: {v:>16}: in {f[f'ab_{v}_in']:>7,.0f} msg/s,"
        f" {f[f'ab_{v}_in_cpu_us_per_msg']:.0f} us CPU/msg, p50 {f[f'ab_{v}_p50']:.2f} ms p99 {f[f'ab_{v}_p99']:.2f} ms;"
        f" out {f[f'ab_{v}_out']:>7,.0f} msg/s, {f[f'ab_{v}_out_cpu_us_per_msg']:.0f} us CPU/msg"
        for v in sorted({k[3:].rsplit("_in", 1)[0] for k in f if k.startswith("ab_") and k.endswith("_in")})
    ]
    if "ilv_in_ratio" in f:
        lines = [
            f"bridge vs raw loops, interleaved, median of {res.params.get('interleave')} rounds:",
            f"  AMQP->Kafka {f['ilv_bridge_in']:,.0f} vs raw receive {f['ilv_raw_receive']:,.0f} msg/s: {f['ilv_in_ratio']:.2f}x (aim >= 1.0x)",
            f"  AMQP->Kafka, lean sender {f['ilv_bridge_in_lean']:,.0f} vs raw receive {f['ilv_raw_receive_lean']:,.0f} msg/s: {f['ilv_in_lean_ratio']:.2f}x",
            f"  latency p50 {f['ilv_bridge_p50']:.2f} vs raw {f['ilv_raw_p50']:.2f} ms: {f['ilv_p50_ratio']:.2f}x (aim <= 1.5x)",
            f"  Kafka->AMQP {f['ilv_bridge_out']:,.0f} vs raw send {f['ilv_raw_send']:,.0f} msg/s: {f['ilv_out_ratio']:.2f}x (aim >= 1.0x)",
        ]  # fmt: skip
        if "ilv_other_in_ratio" in f:
            lines.append(
                f"  other bridge ({res.params.get('other_url')}): AMQP->Kafka {f['ilv_other_in']:,.0f} msg/s {f['ilv_other_in_ratio']:.2f}x,"
                f" lean sender {f['ilv_other_in_lean']:,.0f} msg/s {f['ilv_other_in_lean_ratio']:.2f}x (this bridge {f['ilv_in_lean_vs_other_ratio']:.2f}x of it),"
                f" p50 {f['ilv_other_p50']:.2f} ms {f['ilv_other_p50_ratio']:.2f}x, Kafka->AMQP {f['ilv_other_out']:,.0f} msg/s"
                f" {f['ilv_other_out_ratio']:.2f}x of the raw loops"
            )
        return "\n".join(lines)
    workers = [
        f"  4 senders, {tag or 'uncapped'}: 1 worker {f[f'bridge_in_4senders_1worker{tag}']:,.0f} msg/s, 2 workers"
        f" {f[f'bridge_in_4senders_2worker{tag}']:,.0f} msg/s = {r[f'workers2_vs_workers1{tag}']:.2f}x (aim >= 1.6x with a core"
        f" per worker); busiest worker {f[f'bridge_in_4senders_2worker{tag}_busiest_share']:.0%} of the bridge's CPU"
        for tag in sorted({k.removeprefix("workers2_vs_workers1") for k in r if k.startswith("workers2_vs_workers1")})
    ]
    if "raw_receive" not in f:
        return "\n".join(["bridge benchmark", *ab, *workers])
    lines = [
        *ab,
        f"bridge benchmark: {res.params['messages']} messages of {res.params['size']} bytes, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        f"  raw proton receive loop        {f['raw_receive']:>10,.0f} msg/s   {f['raw_receive_cpu_us_per_msg']:6.0f} us CPU/msg",
        f"  AMQP->Kafka through bridge     {f['bridge_in']:>10,.0f} msg/s   {f['bridge_in_cpu_us_per_msg']:6.0f} us CPU/msg   {r['bridge_in_vs_raw_receive']:.2f}x of raw loop (aim >= 1.0x)",
        f"  the same, lean sender          {f['bridge_in_lean']:>10,.0f} msg/s   raw loop {f['raw_receive_lean']:,.0f} msg/s: {r['bridge_in_lean_vs_raw_receive_lean']:.2f}x",
        f"  confluent-kafka direct produce {f['direct_produce']:>10,.0f} msg/s   bridge is {r['bridge_in_vs_direct_produce']:.2f}x of it",
        *workers,
        f"  raw proton send loop           {f['raw_send']:>10,.0f} msg/s   (bare bodies: {f['raw_send_plain']:,.0f} msg/s)",
        f"  Kafka->AMQP through bridge     {f['bridge_out']:>10,.0f} msg/s   {r['bridge_out_vs_raw_send']:.2f}x of raw send loop (aim >= 1.0x); {f['bridge_out_join']:.2f} s to join the group",
        f"  confluent-kafka direct consume {f['direct_consume']:>10,.0f} msg/s   bridge is {r['bridge_out_vs_direct_consume']:.2f}x of it",
        f"  latency, one in flight: raw p50 {f['raw_p50']:.2f} ms p99 {f['raw_p99']:.2f} ms; bridge p50 {f['bridge_p50']:.2f} ms p99 {f['bridge_p99']:.2f} ms"
        f" ({r['bridge_p50_vs_raw_p50']:.1f}x at p50, aim <= 1.5x; includes Kafka acks=all)",
        f"  Kafka alone, produce -> ack, one in flight: p50 {f['direct_produce_p50']:.2f} ms p99 {f['direct_produce_p99']:.2f} ms"
        f" (bridge p50 is {r['bridge_p50_vs_direct_produce_p50']:.1f}x of it)",
        f"  bridge peak RSS {f['bridge_peak_rss']:.0f} MB",
    ]
    if "compared_in" in f:
        lines.append(
            f"  compared bridge ({res.params['compare_src']}): in {f['compared_in']:,.0f} msg/s ({r['compared_in_vs_raw_receive']:.2f}x raw),"
            f" {f['compared_in_cpu_us_per_msg']:.0f} us CPU/msg, p50 {f['compared_p50']:.2f} ms, out {f['compared_out']:,.0f} msg/s"
            f" ({r['compared_out_vs_raw_send']:.2f}x raw send)"
        )
        lines.append(
            f"  this bridge vs compared: in x{r['bridge_in_vs_compared']:.2f}, CPU/msg x{r['bridge_in_cpu_us_per_msg_vs_compared']:.2f},"
            f" p50 x{r['bridge_p50_vs_compared']:.2f}, out x{r['bridge_out_vs_compared']:.2f}"
        )
    if "other_in" in f:
        lines.append(
            f"  other bridge ({res.params['other_url']}): in {f['other_in']:,.0f} msg/s ({r['other_in_vs_raw_receive']:.2f}x raw),"
            f" {f['other_in_cpu_us_per_msg']:.0f} us CPU/msg, p50 {f['other_p50']:.2f} ms ({r['other_p50_vs_raw_p50']:.2f}x raw),"
            f" out {f['other_out']:,.0f} msg/s ({r['other_out_vs_raw_send']:.2f}x raw send), {f['other_out_join']:.2f} s to join"
        )
        lines.append(
            f"  this bridge vs other: in x{r['bridge_in_vs_other']:.2f} (lean sender x{r['bridge_in_lean_vs_other']:.2f}), p50 x{r['bridge_p50_vs_other']:.2f}, out x{r['bridge_out_vs_other']:.2f}"
        )
    for name in [k for k in f if k.startswith("bridge_in_linger") and k.endswith("ms")]:
        tag = name.removeprefix("bridge_in_")
        lines.append(
            f"  {tag:>12}: {f[name]:>8,.0f} msg/s ({r[f'{name}_vs_raw_receive']:.2f}x raw), {f[name + '_cpu_us_per_msg']:.0f} us CPU/msg,"
            f" p50 {f[f'bridge_p50_{tag}']:.2f} ms p99 {f[f'bridge_p99_{tag}']:.2f} ms"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--linger-ms", default="", help="comma-separated producer linger.ms values to compare, e.g. 0,2,5")
    parser.add_argument(
        "--kafka-bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP"),
        help="default: KAFKA_BOOTSTRAP, else a private Kafka for the run",
    )
    parser.add_argument(
        "--ab-only",
        action="store_true",
        help="with --compare-src: only the interleaved comparison (both directions; --linger-ms adds variants of this bridge)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per variant with --compare-src (default 3)")
    parser.add_argument(
        "--compare-src",
        type=Path,
        help="also measure the bridge imported from this folder (e.g. a bridge/src exported from an older commit), same run",
    )
    parser.add_argument(
        "--interleave", type=int, default=0, help="only the bridge against the raw loops, alternated this many rounds (medians)"
    )
    parser.add_argument(
        "--other-bridge-url",
        help="also measure a bridge already running at this AMQP URL (e.g. the Strimzi AMQP bridge on the same Kafka)",
    )
    parser.add_argument("--other-bridge-pid", type=int, help="its process id, for CPU per message and peak RSS")
    parser.add_argument(
        "--workers-cpu-cap",
        type=float,
        help="also compare 1 and 2 workers with each worker held to this fraction of a core (a cgroup; needs root)",
    )
    parser.add_argument("--workers-only", action="store_true", help="only the 1 vs 2 workers comparison")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    plan = Plan(
        lingers=[float(v) for v in args.linger_ms.split(",") if v.strip()],
        compare_src=args.compare_src,
        rounds=args.rounds,
        ab_only=args.ab_only,
        interleave=args.interleave,
        other=(args.other_bridge_url, args.other_bridge_pid) if args.other_bridge_url else None,
        workers_cpu_cap=args.workers_cpu_cap,
        workers_only=args.workers_only,
    )
    res = Results(
        "bench_bridge",
        {
            "messages": args.messages,
            "size": args.size,
            "linger_ms": plan.lingers,
            "compare_src": str(args.compare_src or ""),
            "rounds": args.rounds,
            "interleave": args.interleave,
            "other_url": args.other_bridge_url or "",
            "workers_cpu_cap": args.workers_cpu_cap,
        },
    )
    run_id, latency_n = uuid.uuid4().hex[:6], min(500, args.messages)
    if args.kafka_bootstrap:
        measure(res, Run(args.kafka_bootstrap, args.messages, args.size, latency_n, run_id), plan)
    else:
        from bench.common import services

        with services() as (_amqp_url, kafka_bootstrap):
            measure(res, Run(kafka_bootstrap, args.messages, args.size, latency_n, run_id), plan)
    print(report(res))
    res.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
