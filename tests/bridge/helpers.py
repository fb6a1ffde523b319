"""Helpers for the bridge tests: free ports, small Kafka helpers, ``amqp-kafka-bridge`` as a process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from amqp_kafka_bridge.readiness import BridgeNotReady, wait_until_ready
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_run(count: int) -> int:
    """A port P such that P .. P + count - 1 are all free (the supervisor serves HTTP on P, worker i on P + 1 + i)."""
    while True:
        first = free_port()
        probes = [socket.socket() for _ in range(count - 1)]
        try:
            for offset, probe in enumerate(probes, 1):
                probe.bind(("127.0.0.1", first + offset))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return first


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the metadata shows every partition
        meta = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
        if meta is not None and meta.error is None and len(meta.partitions) == partitions:
            return
    raise TimeoutError(f"topic {topic} did not appear")


def produce(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for rec in records:
        producer.produce(topic, **rec)
    assert producer.flush(30) == 0


def consume(
    bootstrap: str, topic: str, count: int, timeout: float = 30.0, partitions: int | None = None,
    until: Callable[[list[Any]], bool] | None = None,
) -> list[Any]:  # fmt: skip
    """Read ``count`` records of ``topic`` from the beginning (all partitions), or until ``until(records)``, or the deadline."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"check-{topic}-{time.monotonic_ns()}", "enable.auto.commit": False}
    )
    try:
        deadline = time.monotonic() + timeout
        while partitions is None:  # the topic may not exist yet (e.g. a dead-letter topic being created)
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            if meta.partitions or time.monotonic() > deadline:
                partitions = len(meta.partitions)
            else:
                time.sleep(0.1)  # polling the topic's metadata, the signal itself
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out: list[Any] = []
        while len(out) < count and time.monotonic() < deadline and not (until is not None and until(out)):
            for msg in consumer.consume(min(count - len(out), 1000), 0.5):
                if msg.error() is None:
                    out.append(msg)
        return out
    finally:
        consumer.close()


def committed(bootstrap: str, topic: str, group: str, partition: int = 0) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return consumer.committed([TopicPartition(topic, partition)], timeout=10)[0].offset
    finally:
        consumer.close()


def wait_committed(bootstrap: str, topic: str, group: str, expected: int, partition: int = 0, timeout: float = 15.0) -> int:
    """Poll the group's committed offset until it reaches ``expected`` or the deadline; returns the last value."""
    deadline = time.monotonic() + timeout
    value = committed(bootstrap, topic, group, partition)
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the broker's committed offset (the signal itself), not a fixed wait
        value = committed(bootstrap, topic, group, partition)
    return value


def wait_ready(http_port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    """Wait for the bridge process's ``/readyz``; fail with the tail of its log if it is not ready."""
    try:
        wait_until_ready(f"http://127.0.0.1:{http_port}", timeout, proc)
    except BridgeNotReady as exc:
        raise AssertionError(f"{exc}:\n{log.read_text()[-3000:]}") from None


class BridgeProcess:
    """``amqp-kafka-bridge`` on free ports, its output in ``log``; ``args`` and ``env`` are added to the command and environment."""

    def __init__(self, kafka_bootstrap: str, log: Path, args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> None:
        self.amqp_port, self.http_port = free_port(), free_port()
        self.kafka_bootstrap = kafka_bootstrap
        self.log = log
        self.args = list(args)
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://127.0.0.1:{self.amqp_port}"

    def start(self, timeout: float = 30.0, wait: bool = True) -> None:
        """Start it; with ``wait``, return once ``/readyz`` says ready."""
        cmd = [
            sys.executable,
            "-m",
            "amqp_kafka_bridge",
            "--amqp-port",
            str(self.amqp_port),
            "--http-port",
            str(self.http_port),
            "--kafka-bootstrap",
            self.kafka_bootstrap,
            *self.args,
        ]
        env = dict(os.environ, PYTHONPATH=str(ROOT), **self.env)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out)
        if wait:
            wait_ready(self.http_port, self.proc, self.log, timeout)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
