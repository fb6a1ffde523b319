"""The Spark job's own progress, read from the ``progress {...}`` lines it prints per micro-batch.

The demo waits on this rather than on a fixed grace: a job that is still starting (no
batch yet) or still working (a new batch within the idle bound) is waited for; a job that
has gone quiet is not. See ``jobs.session.progress_summary`` for the line's fields.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

PREFIX = "progress "


@dataclass(frozen=True)
class ProgressSnapshot:
    """What the job reported so far: micro-batches, rows read (per query, the least), when it last reported."""

    batches: int
    rows_read: int
    last_batch_at: float | None  # time.monotonic() of the last progress line; None before the first

    def describe(self) -> str:
        if self.last_batch_at is None:
            return "the job has not finished its first micro-batch yet"
        return f"the job ran {self.batches} micro-batches and read {self.rows_read:,} readings"


class JobProgress:
    """Collects the job's progress lines (fed from the child's output thread); read with :meth:`snapshot`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches = 0
        self._rows: dict[str, int] = {}
        self._last_at: float | None = None

    def on_line(self, line: str) -> bool:
        """Record ``line`` if it is a progress line; True if it was."""
        start = line.find(PREFIX)
        if start < 0:
            return False
        try:
            fields = json.loads(line[start + len(PREFIX) :])
            query, rows = str(fields.get("query")), int(fields.get("input_rows") or 0)
        except (ValueError, TypeError, AttributeError):
            return False
        with self._lock:
            self._batches += 1
            self._rows[query] = self._rows.get(query, 0) + rows
            self._last_at = time.monotonic()
        return True

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            # With one query per sink, each reads every reading: the slowest one is how far the job got.
            rows = min(self._rows.values()) if self._rows else 0
            return ProgressSnapshot(self._batches, rows, self._last_at)
