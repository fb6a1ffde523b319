"""``--workers N``: N bridge processes behind one AMQP port, one HTTP endpoint for all of them.

The supervisor binds the AMQP port and starts the workers (``python -m amqp_kafka_bridge ...
--worker i``), each serving its own HTTP on ``http_port + 1 + i``. It accepts every
connection and hands it to the worker with the fewest open (``amqp_kafka_bridge.handoff``:
the socket over a Unix socket pair per worker; a dead worker gets none until it is back).
The supervisor itself serves ``http_port``: ``/metrics`` sums the workers' series through
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, a private directory
set for the workers), plus its own process metrics, ``bridge_build_info`` and
``bridge_worker_connections{worker}`` (the supervisor's count per worker); ``/healthz``
says every worker runs; ``/readyz`` says every worker is ready and takes connections. A
crashing worker is restarted after 0.5 s, doubling to at most 30 s, at most
``max_worker_restarts`` times; then the supervisor stops the others and exits 1.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from amqp_kafka_bridge.handoff import HANDOFF_ENV, Dispatcher
from amqp_kafka_bridge.http import HttpEndpoint
from amqp_kafka_bridge.settings import BridgeSettings

log = logging.getLogger("bridge")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def restart_delay(restarts: int) -> float:
    """Seconds before the ``restarts``-th restart of a worker: 0.5 s doubling, at most 30 s."""
    return min(0.5 * 2 ** max(restarts - 1, 0), 30.0)


def worker_http_port(settings: BridgeSettings, index: int) -> int:
    return settings.http_port + 1 + index


def _aggregate(directory: Path, handed: Mapping[int, int]) -> bytes:
    from prometheus_client import CollectorRegistry, Gauge, Info, generate_latest
    from prometheus_client.gc_collector import GCCollector
    from prometheus_client.multiprocess import MultiProcessCollector
    from prometheus_client.platform_collector import PlatformCollector
    from prometheus_client.process_collector import ProcessCollector

    from amqp_kafka_bridge.metrics import build_info

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    Info("bridge_build", "The bridge's version and its AMQP/Kafka client libraries", registry=registry).info(build_info())
    split = Gauge(
        "bridge_worker_connections",
        "Connections the supervisor handed to each worker that have not ended (what it balances on)",
        ["worker"],
        registry=registry,
    )
    for index, count in sorted(handed.items()):
        split.labels(str(index)).set(count)
    return generate_latest(registry)


def _answers(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def supervise(argv: Sequence[str], settings: BridgeSettings) -> int:
    """Run ``settings.workers`` workers; forward SIGTERM/SIGINT; restart crashed workers with backoff."""
    workers = settings.workers
    directory = Path(tempfile.mkdtemp(prefix="bridge-metrics-"))
    env = dict(os.environ, **{MULTIPROC_ENV: str(directory)})
    stopping = threading.Event()
    try:
        dispatcher = Dispatcher(settings.amqp_host, settings.amqp_port)
    except OSError as exc:
        log.error(
            "cannot listen on the AMQP port", extra={"amqp": f"{settings.amqp_host}:{settings.amqp_port}", "error": str(exc)}
        )
        shutil.rmtree(directory, ignore_errors=True)
        return 1

    def spawn(index: int) -> subprocess.Popen[bytes]:
        with dispatcher.channel(index) as channel:  # the worker's end: its copy stays open in the worker only
            fd = channel.fileno()
            return subprocess.Popen(
                [sys.executable, "-m", "amqp_kafka_bridge", *argv, "--worker", str(index)],
                env=dict(env, **{HANDOFF_ENV: str(fd)}),
                pass_fds=[fd],
            )

    children = {i: spawn(i) for i in range(workers)}

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    http = HttpEndpoint(
        settings.http_host,
        settings.http_port,
        lambda: _aggregate(directory, dict(dispatcher.open)),
        lambda: all(child.poll() is None for child in children.values()),
        # ready: every worker takes hand-offs (said so on its channel) and answers its own /readyz
        lambda: all(i in dispatcher.up and _answers(worker_http_port(settings, i), "/readyz") for i in children),
    )
    http.start()
    log.info("supervisor started", extra={"workers": workers, "pids": [c.pid for c in children.values()]})
    restarts = dict.fromkeys(children, 0)
    due: dict[int, float] = {}
    gave_up = False
    from prometheus_client import multiprocess

    while not stopping.is_set():
        dispatcher.poll(0.2)  # connections and the workers' reports; the rest of the loop checks the workers
        now = time.monotonic()
        for index, child in list(children.items()):
            if index in due:
                if now >= due[index]:
                    del due[index]
                    children[index] = spawn(index)
                continue
            code = child.poll()
            if code is None:
                continue
            multiprocess.mark_process_dead(child.pid, str(directory))  # its live gauges no longer count
            if restarts[index] >= settings.max_worker_restarts:
                log.error("worker keeps crashing, giving up", extra={"worker": index, "code": code, "restarts": restarts[index]})
                gave_up = True
                on_signal(signal.SIGTERM, None)
                break
            restarts[index] += 1
            delay = restart_delay(restarts[index])
            log.error("worker exited, restarting", extra={"worker": index, "code": code, "in_s": delay})
            due[index] = now + delay
    dispatcher.close()  # new connections are refused from now on; the workers drain theirs
    codes = [child.wait() for child in children.values()]
    http.stop()
    shutil.rmtree(directory, ignore_errors=True)
    return 0 if all(code == 0 for code in codes) and not gave_up else 1
