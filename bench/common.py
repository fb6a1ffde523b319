"""Shared plumbing for the benchmarks: services, a raw proton baseline, timing."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container


@contextlib.contextmanager
def services() -> Iterator[tuple[str, str]]:
    """``(amqp_url, kafka_bootstrap)``: the ones in AMQP_URL/KAFKA_BOOTSTRAP, or private ones on free ports."""
    if os.environ.get("AMQP_URL") and os.environ.get("KAFKA_BOOTSTRAP"):
        yield os.environ["AMQP_URL"], os.environ["KAFKA_BOOTSTRAP"]
        return
    import tempfile

    from services import LocalServices, ServiceSettings

    with tempfile.TemporaryDirectory(prefix="bench-services-") as tmp:
        settings = ServiceSettings.from_env().with_free_ports(Path(tmp))
        with LocalServices(settings) as svc:
            yield svc.amqp_url, svc.kafka_bootstrap


class _RawSender(MessagingHandler):
    def __init__(self, url: str, address: str, count: int, body: bytes) -> None:
        super().__init__()
        self.url, self.address, self.count, self.body = url, address, count, body
        self.sent = self.confirmed = 0

    def on_start(self, event: Any) -> None:
        self.conn = event.container.connect(self.url)
        event.container.create_sender(self.conn, self.address)

    def on_sendable(self, event: Any) -> None:
        while event.sender.credit and self.sent < self.count:
            event.sender.send(Message(body=self.body, durable=True))
            self.sent += 1

    def on_accepted(self, event: Any) -> None:
        self.confirmed += 1
        if self.confirmed == self.count:
            self.conn.close()


class _RawReceiver(MessagingHandler):
    def __init__(self, url: str, address: str, count: int) -> None:
        super().__init__(prefetch=1000)
        self.url, self.address, self.count = url, address, count
        self.received = 0
        self.first = self.last = 0.0

    def on_start(self, event: Any) -> None:
        self.conn = event.container.connect(self.url)
        event.container.create_receiver(self.conn, self.address)

    def on_message(self, event: Any) -> None:
        if self.received == 0:
            self.first = time.perf_counter()
        self.received += 1
        if self.received == self.count:
            self.last = time.perf_counter()
            event.receiver.close()
            self.conn.close()


def raw_send(url: str, address: str, count: int, body: bytes = b"x" * 64) -> float:
    """Send ``count`` durable messages unsettled with a plain proton loop; returns messages/s."""
    handler = _RawSender(url, address, count, body)
    start = time.perf_counter()
    Container(handler).run()
    return count / (time.perf_counter() - start)


def raw_receive(url: str, address: str, count: int) -> float:
    """Receive and accept ``count`` messages with a plain proton loop; returns messages/s (first to last)."""
    handler = _RawReceiver(url, address, count)
    Container(handler).run()
    return (count - 1) / max(handler.last - handler.first, 1e-9)


def report(name: str, rate: float, baseline_name: str, baseline: float) -> None:
    print(f"{name:48s} {rate:10,.0f} msg/s   {rate / baseline:6.2f}x of {baseline_name} ({baseline:,.0f} msg/s)", flush=True)


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` now (``VmRSS`` in /proc/<pid>/status), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ProcessLookupError(pid)  # a zombie has no VmRSS


def open_fds(pid: int) -> int:
    """Number of file descriptors ``pid`` holds open now."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants now (a supervisor and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat_fields(int(entry))[1]), []).append(int(entry))
            except (OSError, IndexError):
                continue  # exited while we looked
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live descendants (``/proc/<pid>/stat``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            fields = _stat_fields(p)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _limit_v2(group: Path, fraction: float) -> None:
    (group / "cpu.max").write_text(f"{int(fraction * 100_000)} 100000")


def _limit_v1(group: Path, fraction: float) -> None:
    (group / "cpu.cfs_period_us").write_text("100000")
    (group / "cpu.cfs_quota_us").write_text(str(int(fraction * 100_000)))


def cpu_cgroup() -> tuple[Path, Callable[[Path, float], None]] | None:
    """Where CPU cgroups are made here and how one is limited: cgroup v2's ``cpu`` controller
    where /sys/fs/cgroup has one, else v1's ``cpu`` hierarchy; None when there is neither."""
    root = Path("/sys/fs/cgroup")
    controllers = root / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        return root, _limit_v2
    if (root / "cpu" / "cpu.cfs_quota_us").exists():
        return root / "cpu", _limit_v1
    return None


@contextlib.contextmanager
def cpu_capped(pids: list[int], fraction: float, name: str = "bench") -> Iterator[None]:
    """Hold each of ``pids`` to ``fraction`` of one core, each in a CPU cgroup of its own, while the block runs.

    For scaling measurements on a machine with fewer free cores than processes: capped
    processes are the limit, not whatever else shares the cores (:func:`cpu_cgroup`; needs root).
    """
    found = cpu_cgroup()
    if found is None:
        raise RuntimeError("no cgroup cpu controller under /sys/fs/cgroup: cannot cap CPU here")
    root, limit = found
    groups = []
    try:
        for i, pid in enumerate(pids):
            group = root / f"{name}-{os.getpid()}-{i}"
            group.mkdir()
            groups.append(group)
            limit(group, fraction)
            (group / "cgroup.procs").write_text(str(pid))  # the whole process, every thread
        yield
    finally:
        for group in groups:
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):  # exited meanwhile
                    (root / "cgroup.procs").write_text(pid)
            group.rmdir()
