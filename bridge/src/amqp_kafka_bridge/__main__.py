"""``amqp-kafka-bridge`` (or ``python -m amqp_kafka_bridge``): run the AMQP<->Kafka bridge until SIGTERM or Ctrl-C, then drain and exit."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from pydantic import ValidationError

from amqp_kafka_bridge import __version__
from amqp_kafka_bridge.app import Bridge
from amqp_kafka_bridge.logs import configure
from amqp_kafka_bridge.settings import BridgeSettings


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="amqp-kafka-bridge", description="AMQP 1.0 <-> Kafka bridge (server or forwarder mode)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", default=os.environ.get("BRIDGE_CONFIG"), help="YAML settings file (env: BRIDGE_CONFIG)")
    parser.add_argument("--mode", choices=["server", "forwarder"])
    parser.add_argument("--amqp-host")
    parser.add_argument("--amqp-port", type=int)
    parser.add_argument("--http-host")
    parser.add_argument("--http-port", type=int)
    parser.add_argument("--kafka-bootstrap")
    parser.add_argument("--converter", choices=["raw", "json", "amqp"])
    parser.add_argument("--key-property")
    parser.add_argument("--routes-file", help="YAML list of routes (forwarder mode)")
    parser.add_argument("--broker-url", action="append", dest="broker_urls", help="forwarder: broker URL (repeat for failover)")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="(env: BRIDGE_LOG_LEVEL)")
    parser.add_argument("--log-format", choices=["json", "text"], help="stderr log lines (default json; env: BRIDGE_LOG_FORMAT)")
    parser.add_argument(
        "--print-config", action="store_true", help="print the effective settings (secrets masked) as JSON and exit"
    )
    parser.add_argument("--workers", type=int, help="server mode: worker processes sharing the AMQP port")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by the supervisor for each child
    return parser.parse_args(argv)


def restart_delay(restarts: int) -> float:
    """Seconds before the ``restarts``-th restart of a worker: 0.5 s doubling, at most 30 s."""
    return min(0.5 * 2 ** max(restarts - 1, 0), 30.0)


def supervise(argv: Sequence[str], workers: int, max_restarts: int = 5) -> int:
    """Run ``workers`` bridge processes on one AMQP port; forward SIGTERM/SIGINT; restart a worker that crashes,
    with exponential backoff, at most ``max_restarts`` times each (then stop the others and exit 1)."""
    log = logging.getLogger("bridge")
    stopping = threading.Event()

    def spawn(index: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "amqp_kafka_bridge", *argv, "--worker", str(index)])

    children = {i: spawn(i) for i in range(workers)}

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("supervisor started", extra={"workers": workers, "pids": [c.pid for c in children.values()]})
    restarts = dict.fromkeys(children, 0)
    due: dict[int, float] = {}
    gave_up = False
    while not stopping.wait(0.2):
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
            if restarts[index] >= max_restarts:
                log.error("worker keeps crashing, giving up", extra={"worker": index, "code": code, "restarts": restarts[index]})
                gave_up = True
                on_signal(signal.SIGTERM, None)
                break
            restarts[index] += 1
            delay = restart_delay(restarts[index])
            log.error("worker exited, restarting", extra={"worker": index, "code": code, "in_s": delay})
            due[index] = now + delay
    codes = [child.wait() for child in children.values()]
    return 0 if all(code == 0 for code in codes) and not gave_up else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k not in ("config", "worker", "print_config") and v is not None}
    try:
        settings = BridgeSettings.load(args.config, **overrides)
    except (ValidationError, ValueError, OSError) as exc:
        print(f"bridge: invalid settings: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(settings.redacted(), indent=2, sort_keys=True))
        return 0
    configure(settings.log_level, settings.log_format)
    if settings.workers > 1 and args.worker is None:
        return supervise(list(argv if argv is not None else sys.argv[1:]), settings.workers, settings.max_worker_restarts)
    if args.worker:
        settings = settings.model_copy(update={"http_port": settings.http_port + args.worker})
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logging.getLogger("bridge").info("signal received, draining", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    bridge = Bridge(settings)
    try:
        bridge.start()
    except (OSError, RuntimeError) as exc:
        logging.getLogger("bridge").error("bridge failed to start", extra={"error": str(exc)})
        bridge.stop(timeout=1)
        return 1
    while not stop.wait(0.5):
        if bridge.wait(0):
            break  # the reactor ended by itself (a failure is logged)
    bridge.stop()
    return 1 if bridge.error else 0


if __name__ == "__main__":
    sys.exit(main())
