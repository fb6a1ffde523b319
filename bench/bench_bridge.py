"""Benchmark of the AMQP<->Kafka bridge against baselines measured in the same run.

    python -m bench.bench_bridge [--messages 20000] [--size 100]

Uses the running services when ``AMQP_URL``/``KAFKA_BOOTSTRAP`` are set (``make up``), else
starts private ones for the run (``bench.common.services``). Prints:

* AMQP -> Kafka through the bridge (unsettled sender, acks=all) vs a raw proton receive
  loop that accepts at once (the Python event-loop ceiling), and vs confluent-kafka
  producing the same messages directly;
* Kafka -> AMQP through the bridge vs a direct confluent-kafka consumer;
* the bridge's added latency (p50/p99, one message in flight) over the raw loop's;
* the bridge process's peak RSS, to show memory stays flat.

Every contestant runs as its own process, like a deployed bridge; the sender/receiver
client is this process.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

from amqp_kafka_bridge.readiness import BridgeNotReady, wait_until_ready
from confluent_kafka import Consumer, Producer, TopicPartition
from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container

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


def start_bridge(kafka: str, workers: int = 1) -> tuple[subprocess.Popen[bytes], int, int]:
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
    proc = subprocess.Popen([*cmd, "--workers", str(workers)], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
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


def run(count: int, size: int, kafka: str) -> dict[str, float]:
    results: dict[str, float] = {}
    run_id = uuid.uuid4().hex[:6]
    latency_n = min(500, count)

    # 1. raw proton receive loop, in its own process
    port = free_port()
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench.bench_bridge import RawReceiver; from proton.reactor import Container; Container(RawReceiver('amqp://127.0.0.1:{port}')).run()"
    raw = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        wait_port(port, raw)
        s = send(f"amqp://127.0.0.1:{port}", "bench", count, size)
        results["raw_proton_msgs"] = count / (s.t1 - s.t0)
        lat = send(f"amqp://127.0.0.1:{port}", "bench", latency_n, size, window=1).latencies
        results["raw_p50_ms"], results["raw_p99_ms"] = pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3
    finally:
        raw.kill()
        raw.wait()

    # 2. confluent-kafka producing the same messages directly (idempotent, acks=all)
    producer = Producer({"bootstrap.servers": kafka, "enable.idempotence": True, "acks": "all", "linger.ms": 2})
    topic_direct = f"bench-direct-{run_id}"
    producer.produce(topic_direct, b"warm-up")
    producer.flush(30)
    body = b"x" * size
    t0 = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(topic_direct, body)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(60)
    results["direct_produce_msgs"] = count / (time.perf_counter() - t0)

    # 3. AMQP -> Kafka through the bridge, and 4. Kafka -> AMQP through it
    bridge, amqp_port, _ = start_bridge(kafka)
    try:
        url = f"amqp://127.0.0.1:{amqp_port}"
        topic = f"bench-bridge-{run_id}"
        send(url, topic, 100, size)  # creates the topic, warms the producer
        s = send(url, topic, count, size)
        results["bridge_in_msgs"] = count / (s.t1 - s.t0)
        lat = send(url, topic, latency_n, size, window=1).latencies
        results["bridge_p50_ms"], results["bridge_p99_ms"] = pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3

        r = Receiver(url, f"{topic_direct}/group.id/bench-{run_id}", count)
        Container(r).run()
        results["bridge_out_msgs"] = (count - 1) / (r.t1 - r.first)  # steady state, after the group join
        results["bridge_out_join_s"] = r.first - r.t0
        results["bridge_peak_rss_mb"] = peak_rss_mb(bridge.pid)
    finally:
        bridge.terminate()
        bridge.wait(30)

    # 5. the same bridge as two worker processes on one port, fed by two sender processes
    bridge, amqp_port, _ = start_bridge(kafka, workers=2)
    try:
        url = f"amqp://127.0.0.1:{amqp_port}"
        topic = f"bench-workers-{run_id}"
        send(url, topic, 100, size)
        results["bridge_in_2workers_msgs"] = parallel_send(url, topic, count, size, senders=2)
    finally:
        bridge.terminate()
        bridge.wait(30)

    consumer = Consumer({"bootstrap.servers": kafka, "group.id": f"bench-direct-{run_id}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic_direct, 0, 1)])  # skip the warm-up record, as the bridge read it too
    got, t0 = 0, time.perf_counter()
    while got < count - 1:
        got += sum(1 for m in consumer.consume(1000, 1.0) if m.error() is None)
    results["direct_consume_msgs"] = got / (time.perf_counter() - t0)
    consumer.close()
    return results


def report(r: dict[str, float], count: int, size: int) -> str:
    lines = [
        f"bridge benchmark: {count} messages of {size} bytes, {os.cpu_count()} cores",
        f"  raw proton receive loop        {r['raw_proton_msgs']:>10,.0f} msg/s",
        f"  AMQP->Kafka through bridge     {r['bridge_in_msgs']:>10,.0f} msg/s   {r['bridge_in_msgs'] / r['raw_proton_msgs']:6.1%} of raw proton loop (aim >= 70%)",
        f"  same, 2 workers, 2 senders     {r['bridge_in_2workers_msgs']:>10,.0f} msg/s   x{r['bridge_in_2workers_msgs'] / r['bridge_in_msgs']:.2f} of one worker (senders share the cores)",
        f"  confluent-kafka direct produce {r['direct_produce_msgs']:>10,.0f} msg/s   bridge is {r['bridge_in_msgs'] / r['direct_produce_msgs']:6.1%} of it",
        f"  Kafka->AMQP through bridge     {r['bridge_out_msgs']:>10,.0f} msg/s   (after {r['bridge_out_join_s']:.1f} s to join the consumer group)",
        f"  confluent-kafka direct consume {r['direct_consume_msgs']:>10,.0f} msg/s   bridge is {r['bridge_out_msgs'] / r['direct_consume_msgs']:6.1%} of it",
        f"  latency, one in flight: raw p50 {r['raw_p50_ms']:.2f} ms p99 {r['raw_p99_ms']:.2f} ms; bridge p50 {r['bridge_p50_ms']:.2f} ms p99 {r['bridge_p99_ms']:.2f} ms",
        f"  bridge added latency: p50 {r['bridge_p50_ms'] - r['raw_p50_ms']:.2f} ms, p99 {r['bridge_p99_ms'] - r['raw_p99_ms']:.2f} ms (includes Kafka acks=all)",
        f"  bridge peak RSS {r['bridge_peak_rss_mb']:.0f} MB",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--kafka-bootstrap", help="default: KAFKA_BOOTSTRAP, else a private Kafka started for the run")
    args = parser.parse_args(argv)
    if args.kafka_bootstrap:
        results = run(args.messages, args.size, args.kafka_bootstrap)
    else:
        from bench.common import services

        with services() as (_amqp_url, kafka_bootstrap):
            results = run(args.messages, args.size, kafka_bootstrap)
    print(report(results, args.messages, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
