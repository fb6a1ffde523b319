"""Load generation: sender processes that send numbered messages with at most ``window`` unsettled and count outcomes.

Each sender runs in its own (spawned) process so that its proton reactor does not share a
core's GIL with what it loads; counters, the stop flag and the gate live in shared memory.
A message's body starts with ``soak-<12 digits>|``, its number, so that whoever receives it
can check it off (:data:`MESSAGE_NUMBER`).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container

_CTX = mp.get_context("spawn")
MESSAGE_NUMBER = re.compile(rb"soak-(\d{12})\|")
"""Finds a soak message's number in its body."""

SENT, SETTLED, ACCEPTED, FAILED, CONNECTIONS, ERRORS = range(6)


@dataclass(frozen=True)
class SenderSpec:
    url: str
    address: str
    size: int = 100  # body bytes
    durable: bool = True
    window: int = 1000  # unsettled deliveries at most
    rate: float = 0.0  # messages/s; 0: as fast as the window and the gate allow
    cycle: int = 0  # drain, close and open a new connection after this many messages on one; 0: one connection


class SenderStatus:
    """Counters shared with a sender process, its stop flag and its gate (send while ``sent < gate``)."""

    def __init__(self, gate: int = 2**62) -> None:
        self.counts = _CTX.Array("q", 6, lock=False)
        self.gate = _CTX.Value("q", gate, lock=False)
        self.stop = _CTX.Event()


class _Tick:
    def __init__(self, handler: _LoadSender) -> None:
        self.handler = handler

    def on_timer_task(self, event: Any) -> None:
        self.handler.on_tick()


class _LoadSender(MessagingHandler):
    """Sends numbered messages (body ``soak-<12 digits>|`` + padding) unsettled; counts the outcomes."""

    TICK_S = 0.02

    def __init__(self, spec: SenderSpec, status: SenderStatus, parent_pid: int) -> None:
        super().__init__(prefetch=0)
        self.spec, self.status, self.parent_pid = spec, status, parent_pid
        self.c = status.counts
        self.pad = b"x" * max(0, spec.size - 18)
        self.conn: Any = None
        self.sender: Any = None
        self.draining = False  # no more sends on this connection: it closes once all are settled
        self.done = False

    def on_start(self, event: Any) -> None:
        self.container = event.container
        self.t0 = time.monotonic()
        self._connect()
        self.container.schedule(self.TICK_S, _Tick(self))

    def _connect(self) -> None:
        self.conn = self.container.connect(self.spec.url, reconnect=False)
        self.sender = self.container.create_sender(self.conn, self.spec.address)
        self.sent_before = self.c[SENT]
        self.draining = False
        self.c[CONNECTIONS] += 1

    def on_tick(self) -> None:
        if self.status.stop.is_set() or os.getppid() != self.parent_pid:
            self.draining = True
        if self.conn is None:  # lost: start again unless stopping
            if self.status.stop.is_set():
                self.done = True
            else:
                self._connect()
        self._pump()
        self._maybe_close()
        if not self.done:
            self.container.schedule(self.TICK_S, _Tick(self))

    def on_sendable(self, event: Any) -> None:
        self._pump()

    def _pump(self) -> None:
        if self.draining or self.sender is None:
            return
        c = self.c
        n = min(self.sender.credit, self.spec.window - (c[SENT] - c[SETTLED]), self.status.gate.value - c[SENT])
        if self.spec.rate:
            n = min(n, int(self.spec.rate * (time.monotonic() - self.t0)) - c[SENT])
        if self.spec.cycle:
            n = min(n, self.spec.cycle - (c[SENT] - self.sent_before))
        for _ in range(n):
            seq = c[SENT]
            self.sender.send(Message(id=seq, body=b"soak-%012d|" % seq + self.pad, durable=self.spec.durable))
            c[SENT] = seq + 1
        if self.spec.cycle and c[SENT] - self.sent_before >= self.spec.cycle:
            self.draining = True

    def on_accepted(self, event: Any) -> None:
        self.c[ACCEPTED] += 1

    def on_rejected(self, event: Any) -> None:
        self.c[FAILED] += 1

    def on_released(self, event: Any) -> None:  # released or modified
        self.c[FAILED] += 1

    def on_settled(self, event: Any) -> None:
        self.c[SETTLED] += 1
        self._pump()
        self._maybe_close()

    def _maybe_close(self) -> None:
        if not self.draining or self.conn is None or self.c[SENT] != self.c[SETTLED]:
            return
        self.conn.close()
        self.conn = self.sender = None
        if self.status.stop.is_set():
            self.done = True
        else:
            self._connect()

    def _lost(self, what: str) -> None:
        c = self.c
        c[ERRORS] += 1
        print(f"soak sender {self.spec.address}: {what}; {c[SENT] - c[SETTLED]} unsettled counted as failed", file=sys.stderr)
        c[FAILED] += c[SENT] - c[SETTLED]
        c[SETTLED] = c[SENT]
        if self.conn is not None:
            self.conn.close()
        self.conn = self.sender = None

    def on_transport_error(self, event: Any) -> None:
        cond = event.transport.condition
        self._lost(f"transport error {cond.name if cond else ''} {cond.description if cond else ''}")

    def on_connection_error(self, event: Any) -> None:
        cond = event.connection.remote_condition
        self._lost(f"connection closed by the peer: {cond.description if cond else ''}")

    def on_link_error(self, event: Any) -> None:
        cond = event.link.remote_condition
        self._lost(f"link closed by the peer: {cond.description if cond else ''}")


def _run_sender(spec: SenderSpec, status: SenderStatus, parent_pid: int) -> None:
    Container(_LoadSender(spec, status, parent_pid)).run()


class LoadSender:
    """A sender process and its counters."""

    def __init__(self, spec: SenderSpec, gate: int = 2**62) -> None:
        self.spec = spec
        self.status = SenderStatus(gate)
        self.process = _CTX.Process(target=_run_sender, args=(spec, self.status, os.getpid()), name="soak-sender", daemon=True)

    def start(self) -> None:
        self.process.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop sending, wait until every sent message is settled, and the process gone."""
        self.status.stop.set()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
            raise TimeoutError(f"the sender to {self.spec.address} did not settle everything within {timeout:.0f} s")

    def count(self, which: int) -> int:
        return int(self.status.counts[which])


def total(senders: Sequence[LoadSender], which: int) -> int:
    """One counter (``ACCEPTED``, ...) summed over ``senders``."""
    return sum(s.count(which) for s in senders)
