"""The result contract (windowed max) as rows, and their table rendering.

Result message body: ``{"window_start": ISO-8601 UTC, "window_end": ...,
"max_temperature": float, "device_id": str, "count": int}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

COLUMNS = ("window_start", "window_end", "max_temperature", "device_id", "count")
WIDTHS = (24, 24, 15, 12, 6)


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One closed window: its bounds, the max, the device that had it, the count."""

    window_start: str
    window_end: str
    max_temperature: float
    device_id: str
    count: int

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> WindowResult:
        """Raises ``KeyError``/``ValueError``/``TypeError`` on a body off the contract."""
        return cls(
            str(obj["window_start"]),
            str(obj["window_end"]),
            float(obj["max_temperature"]),
            str(obj["device_id"]),
            int(obj["count"]),
        )


def header() -> str:
    """Column titles and a rule, two lines."""
    titles = "  ".join(c.ljust(w) for c, w in zip(COLUMNS, WIDTHS, strict=True)).rstrip()
    return titles + "\n" + "  ".join("-" * w for w in WIDTHS)


def format_row(r: WindowResult) -> str:
    cells = (r.window_start, r.window_end, f"{r.max_temperature:.2f}", r.device_id, str(r.count))
    return "  ".join(
        c.rjust(w) if i in (2, 4) else c.ljust(w) for i, (c, w) in enumerate(zip(cells, WIDTHS, strict=True))
    ).rstrip()
