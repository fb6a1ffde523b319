"""``python -m bench.soak``: parse the options, run the soak against the environment's or private services, print the report.

Exit code 0 only when every process stayed flat, every accepted message arrived, and nothing died.
"""

from __future__ import annotations

import argparse
import tempfile
from importlib.metadata import version
from pathlib import Path

from bench.common import services
from bench.soak.driver import run
from bench.soak.sampling import MB


def main(argv: list[str] | None = None) -> int:
    from bench import soak  # its docstring is the help text

    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=soak.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    parser.add_argument("--seconds", type=float, default=300.0, help="seconds of load (default 300)")
    parser.add_argument("--receivers", type=int, default=2, help="ingest receiver processes (default 2)")
    parser.add_argument("--size", type=int, default=100, help="message body bytes (default 100)")
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s per sender; 0: as fast as it goes (default)")
    parser.add_argument("--window", type=int, default=1000, help="unsettled messages per sender (default 1000)")
    parser.add_argument("--backlog", type=int, default=10_000, help="how far the ingest sender may run ahead of the query")
    parser.add_argument(
        "--churn", type=int, default=1000, help="second bridge sender: a new connection every N messages (0: none)"
    )
    parser.add_argument("--segment-mb", type=float, default=4.0, help="ingest log segment size (default 4 MB, to roll often)")
    parser.add_argument("--interval", type=float, default=1.0, help="sampling interval, s")
    args = parser.parse_args(argv)

    with services() as (url, kafka), tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        print(f"soak: {args.seconds:.0f} s against {url} and Kafka {kafka}; progress every 10 s", flush=True)
        result = run(
            url,
            kafka,
            args.seconds,
            Path(tmp),
            receivers=args.receivers,
            size=args.size,
            window=args.window,
            backlog=args.backlog,
            rate=args.rate,
            churn=args.churn,
            segment_bytes=int(args.segment_mb * MB),
            interval=args.interval,
            progress=lambda line: print(line, flush=True),
        )
    print(result.report(), flush=True)
    return 0 if result.flat and result.complete and not result.aborted else 1
