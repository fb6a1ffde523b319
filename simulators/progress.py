"""Counters of a publisher and the live progress line printed on stderr.

On a terminal the line is redrawn in place (``\\r``); otherwise (CI logs,
pipes) a full line is written at most every ``log_interval`` seconds.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Stats:
    """What a publisher did so far; ``resent`` counts released/modified/failed sends."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    resent: int = 0

    def in_flight(self) -> int:
        return self.sent - self.accepted - self.rejected - self.resent


def format_progress(stats: Stats, elapsed: float) -> str:
    """One human line: counts and the accepted rate since the start."""
    rate = stats.accepted / elapsed if elapsed > 0 else 0.0
    line = f"sent {stats.sent}  accepted {stats.accepted}  in-flight {stats.in_flight()}  {rate:.1f} msg/s  {elapsed:.1f}s"
    if stats.resent:
        line += f"  resent {stats.resent}"
    if stats.rejected:
        line += f"  rejected {stats.rejected}"
    return line


@dataclass
class ProgressLine:
    """Throttled writer of :func:`format_progress` to ``stream``."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    interval: float = 0.25
    log_interval: float = 5.0
    enabled: bool = True
    _last: float = field(default=float("-inf"), init=False)

    def update(self, stats: Stats, elapsed: float, now: float, final: bool = False) -> None:
        if not self.enabled:
            return
        tty = self.stream.isatty()
        if not final and now - self._last < (self.interval if tty else self.log_interval):
            return
        self._last = now
        text = format_progress(stats, elapsed)
        if tty:
            self.stream.write("\r\x1b[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
