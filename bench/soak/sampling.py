"""What the soak measures and how it judges it: RSS and open-fd samples of the loaded processes, and the flatness rule.

The rule is shared with the test (``tests/faults/test_soak.py``), which checks it on made-up series.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.common import open_fds, rss_bytes

MB = 1 << 20

WARMUP = 0.2
RSS_TOLERANCE = 0.10
RSS_SLACK = 16 * MB
FD_SLACK = 4
MIN_SAMPLES = 9


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the load started
    rss: int  # bytes
    fds: int


@dataclass(frozen=True)
class Flatness:
    """The verdict on one process's samples, with the numbers behind it."""

    flat: bool
    rss_first: float  # median RSS of the first post-warm-up third, bytes
    rss_last: float  # median RSS of the last third, bytes
    rss_allowed: float  # growth allowed, bytes
    fd_min: int
    fd_max: int
    samples: int  # post-warm-up samples judged
    reason: str
    rss_slope: float = 0.0  # least-squares RSS trend after the warm-up, bytes/s (shown, not judged)

    def describe(self) -> str:
        return (
            f"RSS {self.rss_first / MB:.1f} -> {self.rss_last / MB:.1f} MB (allowed +{self.rss_allowed / MB:.1f}), "
            f"trend {self.rss_slope * 60 / MB:+.2f} MB/min, fds {self.fd_min}..{self.fd_max}, {self.samples} samples: {self.reason}"
        )


def flatness(
    samples: Sequence[Sample],
    warmup: float = WARMUP,
    rss_tolerance: float = RSS_TOLERANCE,
    rss_slack: int = RSS_SLACK,
    fd_slack: int = FD_SLACK,
) -> Flatness:
    """Whether RSS and open fds stayed flat over ``samples`` (taken at a steady interval under load).

    The rule: drop the first ``warmup`` fraction of the samples (imports, buffers and allocator
    arenas filling up), split the rest into thirds. Flat when the median RSS of the last third
    is at most ``max(rss_tolerance x median of the first third, rss_slack)`` above that first
    median (a drop is not a leak), and the open fd count over everything after the warm-up
    varies by at most ``fd_slack``. Needs ``MIN_SAMPLES`` samples after the warm-up.
    """
    judged = list(samples)[int(len(samples) * warmup) :]
    if len(judged) < MIN_SAMPLES:
        return Flatness(False, 0.0, 0.0, 0.0, 0, 0, len(judged), f"too few samples after the warm-up (need {MIN_SAMPLES})")
    third = len(judged) // 3
    first = statistics.median(s.rss for s in judged[:third])
    last = statistics.median(s.rss for s in judged[-third:])
    allowed = max(rss_tolerance * first, float(rss_slack))
    fd_min, fd_max = min(s.fds for s in judged), max(s.fds for s in judged)
    problems = []
    if last - first > allowed:
        problems.append(f"RSS grew {(last - first) / MB:.1f} MB")
    if fd_max - fd_min > fd_slack:
        problems.append(f"open fds varied by {fd_max - fd_min} (> {fd_slack})")
    slope = statistics.linear_regression([s.t for s in judged], [float(s.rss) for s in judged]).slope
    return Flatness(not problems, first, last, allowed, fd_min, fd_max, len(judged), "; ".join(problems) or "flat", slope)


RULE = (
    f"after a warm-up of {WARMUP:.0%} of the samples, median RSS of the last third <= median of the first third "
    f"+ max({RSS_TOLERANCE:.0%}, {RSS_SLACK // MB} MB); open fds max - min <= {FD_SLACK}"
)


class Sampler(threading.Thread):
    """Samples RSS and open fds of named processes every ``interval`` s until ``halt`` is set."""

    def __init__(self, pids: dict[str, int], interval: float = 1.0, extra: Callable[[], int] | None = None) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.pids = pids
        self.interval = interval
        self.extra = extra
        self.samples: dict[str, list[Sample]] = {name: [] for name in pids}
        self.extra_samples: list[int] = []
        self.gone: dict[str, float] = {}  # process name -> when it was found gone
        self.halt = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while True:
            now = time.monotonic() - t0
            for name, pid in self.pids.items():
                if name in self.gone:
                    continue
                try:
                    self.samples[name].append(Sample(now, rss_bytes(pid), open_fds(pid)))
                except (FileNotFoundError, ProcessLookupError):
                    self.gone[name] = now
            if self.extra is not None:
                self.extra_samples.append(self.extra())
            if self.halt.wait(self.interval):
                return
