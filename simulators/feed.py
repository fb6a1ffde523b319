"""What a publisher sends and what it records: the paced feed and the accepted log.

Shared by the AMQP and the Kafka publishers so both have the same semantics:
readings come from the model at the pacer's rate; every reading the peer
accepted is appended to the accepted log (one compact JSON object per line,
exactly the message body), which is the ground truth tests recompute results
from.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from simulators.model import Reading, TemperatureModel
from simulators.pacing import Pacer


class ReadingFeed:
    """Readings due at a moment; stops on the pacer's bounds or on :meth:`stop`."""

    def __init__(self, model: TemperatureModel, pacer: Pacer) -> None:
        self.model = model
        self.pacer = pacer
        self.stopped = False

    def poll(self, now: float) -> list[Reading]:
        if self.stopped:
            return []
        return self.model.take(self.pacer.due(now))

    def finished(self, now: float) -> bool:
        return self.stopped or self.pacer.finished()

    def stop(self) -> None:
        """No more readings after this (Ctrl-C, SIGTERM); in-flight ones still settle."""
        self.stopped = True


class AcceptedLog:
    """Appends accepted readings as JSON lines; a no-op without a path.

    Lines are written in acceptance order, which may differ from send order
    after a resend. The file is line-buffered so a killed publisher leaves
    whole lines behind (at most the last one torn).
    """

    def __init__(self, path: str | Path | None) -> None:
        self._file: IO[str] | None = open(path, "w", encoding="utf-8", buffering=1) if path else None

    def write(self, reading: Reading) -> None:
        if self._file is not None:
            self._file.write(reading.to_json() + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> AcceptedLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_accepted_log(path: str | Path) -> list[Reading]:
    """The readings of an accepted log (ignores a torn last line)."""
    readings = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            readings.append(Reading.from_json(line))
        except (ValueError, KeyError):
            continue
    return readings
