"""Device churn: clients that attach and vanish without closing (killed, or exiting mid-session) must leave no
trace in the bridge's metrics: ``bridge_open_connections`` back to 0 and the same series in ``/metrics``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.bridge.helpers import ROOT, BridgeProcess

pytestmark = pytest.mark.integration

CLIENTS = int(os.environ.get("BRIDGE_CHURN_CLIENTS", "1000"))
PER_PROCESS = 100

# One process holding ``count`` connections, each with an attached sender (every tenth a receiver too); it says "attached"
# once the bridge opened every link, then either exits without closing anything or waits to be killed.
CHILD = r"""
import os, sys
from proton.handlers import MessagingHandler
from proton.reactor import Container
url, topic, count, how = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
class Churn(MessagingHandler):
    def __init__(self):
        super().__init__(prefetch=0)
        self.opened = 0
    def on_start(self, event):
        for i in range(count):
            conn = event.container.connect(url, reconnect=False)
            event.container.create_sender(conn, topic)
            if i % 10 == 0:  # a receiver is a Kafka consumer in the bridge: fewer of them keep the test lean
                event.container.create_receiver(conn, f"{topic}/group.id/churn-{os.getpid()}-{i}")
    def on_link_opened(self, event):
        self.opened += 1
        if self.opened == count + (count + 9) // 10:
            print("attached", flush=True)
            if how == "exit":
                os._exit(0)  # no AMQP close, no TCP shutdown by proton: the OS drops the sockets
    def on_link_error(self, event):
        print("link error", event.link.remote_condition, flush=True)
        os._exit(3)
Container(Churn()).run()
"""


def scrape(bridge: BridgeProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{bridge.http_port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, f"{series} not in /metrics"
    return float(match.group(1))


def series(text: str) -> set[str]:
    """The series names with labels (values left out: counters move, the set must not grow)."""
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def rss_kib(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))  # type: ignore[union-attr]


def churn(url: str, topic: str, count: int, how: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, topic, str(count), how],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert child.stdout is not None
    line = child.stdout.readline().decode().strip()  # blocks until every link is open (or the child failed)
    if how == "kill":
        child.send_signal(signal.SIGKILL)
    child.wait(60)
    assert line == "attached", line


def wait_until(bridge: BridgeProcess, done: callable, timeout: float = 120.0) -> str:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    text = scrape(bridge)
    while not done(text) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling /metrics, the signal itself
        text = scrape(bridge)
    return text


def test_clients_that_vanish_leave_no_series_and_no_open_connections(kafka_bootstrap, unique_name, tmp_path):
    bridge = BridgeProcess(kafka_bootstrap, tmp_path / "bridge.log")
    bridge.start()
    try:
        topic = unique_name("churn")
        churn(bridge.url, topic, 10, "exit")  # warm-up: the topic's series exist from now on
        settled = wait_until(bridge, lambda t: value(t, "bridge_open_connections") == 0)
        before, rss_before = scrape(bridge), rss_kib(bridge.proc.pid)  # type: ignore[union-attr]
        assert value(settled, "bridge_open_connections") == 0
        started = time.monotonic()
        for i in range(CLIENTS // PER_PROCESS):
            churn(bridge.url, topic, PER_PROCESS, "kill" if i % 2 else "exit")
        after = wait_until(
            bridge,
            lambda t: (
                value(t, "bridge_open_connections") == 0
                and value(t, 'bridge_open_links{role="sender"}') == 0
                and value(t, 'bridge_open_links{role="receiver"}') == 0
            ),
        )
        rss_after = rss_kib(bridge.proc.pid)  # type: ignore[union-attr]
        print(
            f"{CLIENTS} clients in {time.monotonic() - started:.1f}s; /metrics {len(before)} -> {len(after)} bytes; "
            f"RSS {rss_before} -> {rss_after} KiB"
        )
        assert value(after, "bridge_open_connections") == 0
        assert value(after, 'bridge_open_links{role="sender"}') == 0
        assert series(after) == series(before)
        assert abs(len(after) - len(before)) < 0.02 * len(before)
    finally:
        bridge.stop()
