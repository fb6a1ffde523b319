"""``python -m demo``: devices -> Artemis -> Spark 5 s windowed max -> AMQP and Kafka ``max``, printed live.

Starts Artemis and Kafka (unless ``--amqp-url``/``--kafka-bootstrap`` name running ones,
or they already run), the bridge forwarding ``temperature`` to Kafka, the Spark job, the
result receiver and the simulator. Stops on Ctrl-C/SIGTERM or after ``--duration`` seconds
of publishing, waits (bounded) for the last windows, stops everything and prints a
summary. State, logs and the simulator's accepted log go to ``--state-dir`` (``.run/demo``).
Exit status 0 when every window the watermark closed reached both sinks.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from types import FrameType

from confluent_kafka import KafkaException

from demo.run import Demo
from demo.settings import DemoSettings
from demo.topology import TopologyError
from services.fetch import FetchError
from services.process import ServiceError

_DEFAULTS = DemoSettings()


def parse_args(argv: Sequence[str] | None) -> DemoSettings:
    p = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    p.add_argument("--duration", type=float, default=None, help="seconds of publishing, then stop (default: until Ctrl-C)")
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="simulator seed")
    p.add_argument("--devices", type=int, default=_DEFAULTS.devices)
    p.add_argument("--rate", type=float, default=_DEFAULTS.rate, help="readings per second, all devices together")
    p.add_argument(
        "--spike-fraction", type=float, default=_DEFAULTS.spike_fraction, help="fraction of readings with a +15 degree spike"
    )
    p.add_argument("--amqp-url", default=None, help="use this running broker (with --kafka-bootstrap) instead of starting one")
    p.add_argument("--kafka-bootstrap", default=None, help="use this running Kafka (with --amqp-url)")
    p.add_argument("--temperature-address", default=_DEFAULTS.temperature_address)
    p.add_argument("--max-address", default=_DEFAULTS.max_address)
    p.add_argument("--temperature-topic", default=_DEFAULTS.temperature_topic)
    p.add_argument("--max-topic", default=_DEFAULTS.max_topic)
    p.add_argument("--watermark", type=int, default=_DEFAULTS.watermark_s, help="watermark delay, seconds")
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=_DEFAULTS.drain_timeout,
        help="after publishing, give up waiting for the last windows when the job made no progress for this many seconds",
    )
    p.add_argument(
        "--job-start-timeout",
        type=float,
        default=_DEFAULTS.job_start_timeout,
        help="give up when the Spark job has not finished its first micro-batch this many seconds after it started",
    )
    p.add_argument(
        "--bridge-http-port",
        type=int,
        default=_DEFAULTS.bridge_http_port,
        help="bridge metrics/health port (env BRIDGE_HTTP_PORT)",
    )
    p.add_argument("--state-dir", type=Path, default=_DEFAULTS.state_dir, help="checkpoints, logs, accepted log")
    a = p.parse_args(argv)
    if (a.amqp_url is None) != (a.kafka_bootstrap is None):
        p.error("--amqp-url and --kafka-bootstrap go together")
    if a.duration is not None and a.duration <= 0:
        p.error("--duration must be > 0")
    return DemoSettings(
        amqp_url=a.amqp_url,
        kafka_bootstrap=a.kafka_bootstrap,
        temperature_address=a.temperature_address,
        max_address=a.max_address,
        temperature_topic=a.temperature_topic,
        max_topic=a.max_topic,
        devices=a.devices,
        rate=a.rate,
        seed=a.seed,
        spike_fraction=a.spike_fraction,
        duration=a.duration,
        watermark_s=a.watermark,
        drain_timeout=a.drain_timeout,
        job_start_timeout=a.job_start_timeout,
        bridge_http_port=a.bridge_http_port,
        state_dir=a.state_dir.resolve(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    demo = Demo(settings)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        demo.say("\nstopping (again to skip waiting for the last windows) ..." if signum == signal.SIGINT else "\nstopping ...")
        demo.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        return demo.run()
    except (TopologyError, FileNotFoundError, KafkaException, ServiceError, FetchError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    sys.exit(main())
