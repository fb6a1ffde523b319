"""Plain-Python recomputation of the windowed max, the reference the job is checked against.

Independent of Spark on purpose: tumbling windows ``[start, start + window)``
aligned to the epoch, max temperature, ties to the greatest device id, count.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

from simulators.model import Reading


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def expected_windows(readings: Iterable[Reading], window_ms: int = 5000, closed_before_ms: int | None = None) -> list[dict]:
    """Result-contract dicts per window, ordered by start.

    ``closed_before_ms``: keep only windows whose end is at or before it (the
    windows a watermark at that event time has closed).
    """
    windows: dict[int, list[Reading]] = {}
    for r in readings:
        windows.setdefault(r.ts - r.ts % window_ms, []).append(r)
    out = []
    for start in sorted(windows):
        if closed_before_ms is not None and start + window_ms > closed_before_ms:
            continue
        rs = windows[start]
        top = max(rs, key=lambda r: (r.temperature, r.device_id))
        out.append(
            {
                "window_start": iso(start),
                "window_end": iso(start + window_ms),
                "max_temperature": top.temperature,
                "device_id": top.device_id,
                "count": len(rs),
            }
        )
    return out
