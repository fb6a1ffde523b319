"""``amqp-kafka-bridge`` (or ``python -m amqp_kafka_bridge``): run the AMQP<->Kafka bridge until SIGTERM or Ctrl-C, then drain and exit."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from pydantic import ValidationError

from amqp_kafka_bridge import __version__
from amqp_kafka_bridge.app import Bridge
from amqp_kafka_bridge.logs import configure
from amqp_kafka_bridge.settings import BridgeSettings
from amqp_kafka_bridge.supervisor import supervise, worker_http_port


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
        return supervise(list(argv if argv is not None else sys.argv[1:]), settings)
    if args.worker is not None:
        settings = settings.model_copy(update={"http_port": worker_http_port(settings, args.worker)})
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
