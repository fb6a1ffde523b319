"""CLI: many simulated temperature devices publishing to AMQP (or Kafka).

    python -m simulators.temperature --devices 50 --rate 200 --seed 7 \\
        --url amqp://127.0.0.1:5672 --address temperature --duration 60 \\
        --accepted-log accepted.jsonl

Runs until ``--count`` readings or ``--duration`` seconds (whichever first),
or Ctrl-C/SIGTERM; then waits (bounded) for outstanding deliveries to be
settled. Exit status 0 when every sent reading was accepted, 1 otherwise.
With ``--kafka-bootstrap`` the readings go to the Kafka topic ``--address``
instead of AMQP.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from importlib.metadata import version
from types import FrameType

from simulators.feed import AcceptedLog, ReadingFeed
from simulators.model import ModelConfig, TemperatureModel
from simulators.pacing import Pacer
from simulators.progress import ProgressLine


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m simulators.temperature", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    p.add_argument(
        "--url",
        default=os.environ.get("AMQP_URL", "amqp://127.0.0.1:5672"),
        help="AMQP broker or bridge URL, several comma-separated for failover (env AMQP_URL)",
    )
    p.add_argument("--address", default="temperature", help="AMQP address (or Kafka topic)")
    p.add_argument("--kafka-bootstrap", default=None, help="produce to Kafka at these bootstrap servers instead of AMQP")
    p.add_argument("--devices", type=int, default=50, help="number of simulated devices")
    p.add_argument("--rate", type=float, default=200.0, help="readings per second, all devices together")
    p.add_argument("--count", type=int, default=None, help="stop after this many readings")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="event-time seconds per wall-clock second (e.g. 10: a minute of readings in 6 s)",
    )
    p.add_argument("--start-ms", type=int, default=None, help="event time of the first reading, epoch ms (default: now)")
    p.add_argument(
        "--late-fraction", type=float, default=0.0, help="fraction of readings whose event time is --late-by seconds in the past"
    )
    p.add_argument("--late-by", type=float, default=0.0, help="seconds a late reading lags")
    p.add_argument("--spike-fraction", type=float, default=0.0, help="fraction of readings with a spike")
    p.add_argument("--spike-size", type=float, default=15.0, help="degrees added by a spike")
    p.add_argument("--accepted-log", default=None, help="write the JSON of every accepted reading to this file, one per line")
    p.add_argument("--drain-timeout", type=float, default=30.0, help="seconds to wait for outstanding deliveries at the end")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    args = p.parse_args(argv)
    if args.count is not None and args.count < 0:
        p.error("--count must be >= 0")
    if args.duration is not None and args.duration < 0:
        p.error("--duration must be >= 0")
    if not args.time_scale > 0:
        p.error("--time-scale must be > 0")
    return args


def build_feed(args: argparse.Namespace, now: float) -> ReadingFeed:
    """The model and pacer the arguments describe (event clock starts at --start-ms)."""
    seed = args.seed if args.seed is not None else time.time_ns() % 2**32
    start_ms = args.start_ms if args.start_ms is not None else time.time_ns() // 1_000_000
    config = ModelConfig(
        devices=args.devices,
        rate=args.rate / args.time_scale,  # readings per event-time second
        start_ms=start_ms,
        seed=seed,
        late_fraction=args.late_fraction,
        late_by_ms=int(args.late_by * 1000),
        spike_fraction=args.spike_fraction,
        spike_size=args.spike_size,
    )
    until = now + args.duration if args.duration is not None else None
    return ReadingFeed(TemperatureModel(config), Pacer(args.rate, now, limit=args.count, until=until))


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("proton").setLevel(logging.WARNING)  # its connect/close chatter; our handler logs what matters
    try:
        args = parse_args(argv)
        feed = build_feed(args, time.monotonic())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress = ProgressLine(enabled=not args.quiet)
    with AcceptedLog(args.accepted_log) as accepted_log:
        if args.kafka_bootstrap:
            from simulators.kafka_publisher import KafkaPublisher

            publisher = KafkaPublisher(
                args.kafka_bootstrap, args.address, feed, accepted_log.write, progress, drain_timeout=args.drain_timeout
            )
            run = publisher.run
        else:
            from simulators.amqp_publisher import AmqpPublisher, publish_amqp

            publisher = AmqpPublisher(
                args.url, args.address, feed, accepted_log.write, progress, drain_timeout=args.drain_timeout
            )
            run = lambda: publish_amqp(publisher)  # noqa: E731

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if feed.stopped:  # second signal: stop now
                raise KeyboardInterrupt
            publisher.request_stop()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            stats = run()
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    if publisher.error:
        print(f"error: {publisher.error}", file=sys.stderr)
    ok = publisher.error is None and stats.rejected == 0 and stats.in_flight() == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
