"""CLI: print windowed-max results from an AMQP address as they arrive.

    python -m simulators.receiver --url amqp://127.0.0.1:5672 --address max

Prints a table (or, with ``--json``, each body as one line) on stdout. Stops
after ``--count`` messages or ``--timeout`` seconds, or on Ctrl-C/SIGTERM.
Messages are accepted after they are printed; a body off the contract is
rejected (the broker dead-letters it) and counted; the first few are
printed as warnings on stderr. Pitfall: pointed at the wrong address, the
receiver consumes and rejects what is there. Exit status 0 unless ``--count``
was given and not reached.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from types import FrameType
from typing import TextIO

from amqp_message_model.connection import connect_kwargs
from proton import Event
from proton.handlers import MessagingHandler
from proton.reactor import Container

from simulators.amqp_publisher import connection_options
from simulators.messages import body_text
from simulators.results import WindowResult, format_row, header

MAX_WARNINGS = 3


class ResultReceiver(MessagingHandler):
    """Receives from ``address`` and hands each body to ``on_body`` before accepting it.

    ``on_body`` raising ``ValueError``/``KeyError``/``TypeError`` rejects the
    message. Stops after ``count`` messages or at ``deadline`` (monotonic).
    """

    def __init__(
        self,
        url: str,
        address: str,
        on_body: Callable[[str], None],
        count: int | None = None,
        deadline: float | None = None,
        credit: int = 100,
        tick: float = 0.1,
    ) -> None:
        super().__init__(prefetch=credit, auto_accept=False)
        self.url, self.address, self.on_body = url, address, on_body
        self.count, self.deadline, self.tick = count, deadline, tick
        self.received = 0
        self.rejected = 0
        self.error: str | None = None
        self.stop_requested = False
        self._connection = None

    def on_start(self, event: Event) -> None:
        self._connection = event.container.connect(**connect_kwargs(connection_options(self.url), reconnect=True))
        event.container.create_receiver(self._connection, self.address)
        event.container.schedule(self.tick, self)

    def on_timer_task(self, event: Event) -> None:
        if self._connection is None:
            return
        if self.stop_requested or (self.deadline is not None and time.monotonic() >= self.deadline):
            self._finish()
            return
        event.container.schedule(self.tick, self)

    def on_message(self, event: Event) -> None:
        if self._connection is None:
            return
        try:
            self.on_body(body_text(event.message))
        except (ValueError, KeyError, TypeError) as exc:
            self.rejected += 1
            if self.rejected <= MAX_WARNINGS:
                more = " (further ones only counted)" if self.rejected == MAX_WARNINGS else ""
                print(f"warning: rejected a message off the result contract: {exc!r}{more}", file=sys.stderr)
            self.reject(event.delivery)
        else:
            self.accept(event.delivery)
            self.received += 1
        if self.count is not None and self.received >= self.count:
            self._finish()

    def on_link_error(self, event: Event) -> None:
        cond = event.link.remote_condition
        self.error = f"link error {cond.name}: {cond.description}" if cond else "link error"
        self._finish()

    def on_connection_error(self, event: Event) -> None:
        cond = event.connection.remote_condition
        self.error = f"connection error {cond.name}: {cond.description}" if cond else "connection error"
        self._finish()

    def _finish(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def table_printer(out: TextIO) -> Callable[[str], None]:
    """An ``on_body`` that prints the header once, then one row per result."""
    state = {"header": False}

    def on_body(text: str) -> None:
        row = WindowResult.from_dict(json.loads(text))
        if not state["header"]:
            print(header(), file=out)
            state["header"] = True
        print(format_row(row), file=out, flush=True)

    return on_body


def json_printer(out: TextIO) -> Callable[[str], None]:
    """An ``on_body`` that prints each body as one line of JSON."""

    def on_body(text: str) -> None:
        print(json.dumps(json.loads(text), separators=(",", ":")), file=out, flush=True)

    return on_body


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m simulators.receiver", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {version('amqp-message-model')}")
    p.add_argument(
        "--url",
        default=os.environ.get("AMQP_URL", "amqp://127.0.0.1:5672"),
        help="AMQP broker or bridge URL, several comma-separated for failover (env AMQP_URL)",
    )
    p.add_argument("--address", default="max", help="AMQP address of the results")
    p.add_argument("--count", type=int, default=None, help="stop after this many results")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--json", action="store_true", help="print raw JSON lines instead of a table")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    deadline = time.monotonic() + args.timeout if args.timeout is not None else None
    printer = json_printer(out) if args.json else table_printer(out)
    receiver = ResultReceiver(args.url, args.address, printer, count=args.count, deadline=deadline)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if receiver.stop_requested:
            raise KeyboardInterrupt
        receiver.stop_requested = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        Container(receiver).run()
    except KeyboardInterrupt:
        return 130
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if receiver.rejected:
        print(f"rejected {receiver.rejected} messages off the result contract (dead-lettered by the broker)", file=sys.stderr)
    if receiver.error:
        print(f"error: {receiver.error}", file=sys.stderr)
        return 1
    if args.count is not None and receiver.received < args.count:
        print(f"received {receiver.received} of {args.count} before the timeout", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
