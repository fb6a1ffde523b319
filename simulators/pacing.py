"""How many messages are due at a given moment, for a constant-rate sender.

Pure arithmetic over a monotonic clock so that the I/O loops only ask "how
many now?" on each tick. Message ``k`` (0-based) is due at ``start + k/rate``.
Catch-up is bounded: after a stall (GC, back-pressure) at most ``max_burst``
messages are released at once, so a broker is not flooded when it comes back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Pacer:
    """Releases ``rate`` messages per second from ``start`` (seconds).

    ``limit`` bounds the total count; ``until`` (absolute, same clock) bounds the
    time: no message due at or after ``until`` is released.
    """

    rate: float
    start: float
    limit: int | None = None
    until: float | None = None
    max_burst: int = 1000
    released: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")

    def _cap(self) -> int | None:
        caps = []
        if self.limit is not None:
            caps.append(self.limit)
        if self.until is not None:
            caps.append(max(0, math.ceil((self.until - self.start) * self.rate)))
        return min(caps) if caps else None

    def due(self, now: float) -> int:
        """Messages to release at ``now`` (and count them as released)."""
        if now < self.start:
            return 0
        target = int((now - self.start) * self.rate) + 1
        cap = self._cap()
        if cap is not None:
            target = min(target, cap)
        n = max(0, min(target - self.released, self.max_burst))
        self.released += n
        return n

    def finished(self) -> bool:
        """True once nothing more will ever be released."""
        cap = self._cap()
        return cap is not None and self.released >= cap
