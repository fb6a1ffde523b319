"""The streaming reader of the ``amqp`` source: Spark offsets over the write-ahead log.

Where each hook runs (PySpark 4.2+):

- ``initialOffset``, ``latestOffset``, ``partitions``, ``commit``, ``stop`` run in one
  long-lived Python process on the driver. The first of them starts the ingest processes
  (one per address and receiver), which receive, log and accept.
- ``read`` runs in executor Python workers on a separate, unpickled copy of this reader
  that has no ingest processes: it reads the offset range from the log folder.
- ``commit(end)`` for batch N arrives only when batch N+1 is planned, and the last batch's
  commit never arrives; settlement is therefore never tied to it. It only trims the log.

Offsets are ``{"<address>#<receiver>": <next offset>}``, one entry per log partition.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql.datasource import DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadLimit, ReadMaxRows, SupportsTriggerAvailableNow

from pyspark_amqp.options import SourceOptions
from pyspark_amqp.wal import CorruptLogError, first_offset, read_range, trim

log = logging.getLogger("pyspark_amqp.source")


@dataclass(frozen=True)
class LogPartition:
    """One receiver's log: the unit of parallelism, like a Kafka topic partition."""

    address: str
    index: int

    @property
    def key(self) -> str:
        return f"{self.address}#{self.index}"

    def folder(self, log_dir: Path) -> Path:
        # Addresses may hold any character; the folder name stays readable and unique.
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", self.address)[:80]
        digest = hashlib.sha1(self.address.encode()).hexdigest()[:8]
        return log_dir / f"{safe}-{digest}" / f"receiver-{self.index}"


class AmqpInputPartition(InputPartition):
    def __init__(self, address: str, index: int, folder: str, start: int, end: int) -> None:
        super().__init__((address, index, start, end))
        self.address = address
        self.index = index
        self.folder = folder
        self.start = start
        self.end = end


def split_limit(available: dict[str, int], limit: int) -> dict[str, int]:
    """Share ``limit`` rows across partitions in proportion to what each has, like Kafka's rate limit.

    Every partition with data gets at least one row while the limit allows; the result never
    exceeds what is available nor, in total, the limit.
    """
    total = sum(available.values())
    if total <= limit:
        return dict(available)
    shares = {k: min(v, (v * limit) // total) for k, v in available.items()}
    left = limit - sum(shares.values())
    for k in sorted(available, key=lambda k: available[k] - shares[k], reverse=True):
        if left <= 0:
            break
        extra = min(left, available[k] - shares[k])
        shares[k] += extra
        left -= extra
    return shares


class AmqpStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Spark's side of the source; see the module docstring for where each hook runs."""

    QUIET_S = 0.5

    def __init__(self, options: SourceOptions) -> None:
        self.options = options
        self.partitions_ = [LogPartition(a, i) for a in options.addresses for i in range(options.receivers)]
        self._ingest: dict[str, Any] | None = None
        self._available_now: dict[str, int] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Executors get a copy without the driver's ingest processes.
        state = dict(self.__dict__)
        state["_ingest"] = None
        return state

    # --- driver side -------------------------------------------------------------------
    def _started(self) -> dict[str, Any]:
        if self._ingest is None:
            from pyspark_amqp.ingest import IngestProcess, IngestSpec

            procs: dict[str, Any] = {}
            for part in self.partitions_:
                spec = IngestSpec(
                    connection=self.options.connection,
                    address=part.address,
                    log_folder=part.folder(self.options.log_dir),
                    credit=self.options.credit,
                    max_buffered_messages=self.options.max_buffered_messages,
                    at_most_once=self.options.at_most_once,
                    segment_bytes=self.options.log_segment_bytes,
                    link_name=f"spark-amqp-{part.key}",
                )
                procs[part.key] = IngestProcess(spec)
            self._ingest = procs
            for proc in procs.values():
                proc.start()
            try:
                for proc in procs.values():
                    proc.wait_attached(self.options.start_timeout_s)
            except BaseException:
                self.stop()
                raise
        return self._ingest

    def _durable(self) -> dict[str, int]:
        procs = self._started()
        for key, proc in list(procs.items()):
            if not proc.process.is_alive():
                # Its log is intact; a fresh process recovers it and the broker redelivers the rest.
                log.warning("amqp source: the receiver for %s exited (code %s); starting a new one", key, proc.process.exitcode)
                procs[key] = proc.restarted(self.options.start_timeout_s)
        return {key: proc.durable for key, proc in procs.items()}

    def initialOffset(self) -> dict[str, int]:
        self._started()
        return {p.key: first_offset(p.folder(self.options.log_dir)) for p in self.partitions_}

    def getDefaultReadLimit(self) -> ReadLimit:
        if self.options.max_messages_per_trigger:
            return ReadMaxRows(self.options.max_messages_per_trigger)
        return ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        """Fix the target: what the broker delivered until the receivers went quiet.

        AMQP has no "end offset" to ask for, so the backlog counts as read when no receiver
        logged anything new for ``QUIET_S`` seconds (bounded by ``startTimeout``).
        """
        import time

        deadline = time.monotonic() + self.options.start_timeout_s
        last = self._durable()
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < self.QUIET_S:
            time.sleep(0.05)
            now = self._durable()
            if now != last:
                last, quiet_since = now, time.monotonic()
        self._available_now = last

    def latestOffset(self, start: dict[str, int], limit: ReadLimit) -> dict[str, int]:
        latest = self._durable()
        if self._available_now is not None:
            latest = {k: min(v, self._available_now.get(k, v)) for k, v in latest.items()}
        begin = {k: int(start.get(k, first_offset(self._folder(k)))) for k in latest}
        available = {k: max(0, latest[k] - begin[k]) for k in latest}
        if isinstance(limit, ReadMaxRows):
            available = split_limit(available, limit.max_rows)
        end = {k: begin[k] + available[k] for k in latest}
        procs = self._started()
        for key, offset in end.items():
            procs[key].set_planned(offset)
        return end

    def reportLatestOffset(self) -> dict[str, int] | None:
        return self._durable() if self._ingest is not None else None

    def _folder(self, key: str) -> Path:
        address, _, index = key.rpartition("#")
        return LogPartition(address, int(index)).folder(self.options.log_dir)

    def partitions(self, start: dict[str, int], end: dict[str, int]) -> list[InputPartition]:
        parts: list[InputPartition] = []
        for key, stop in end.items():
            begin = int(start.get(key, first_offset(self._folder(key))))
            if stop > begin:
                address, _, index = key.rpartition("#")
                parts.append(AmqpInputPartition(address, int(index), str(self._folder(key)), begin, int(stop)))
        return parts

    def commit(self, end: dict[str, int]) -> None:
        for key, offset in end.items():
            trim(self._folder(key), int(offset))

    def stop(self) -> None:
        if self._ingest:
            for proc in self._ingest.values():
                proc.stop()
        self._ingest = None

    # --- executor side -----------------------------------------------------------------
    ARROW_BATCH_ROWS = 8192

    def read(self, partition: InputPartition) -> Iterator[Any]:
        """Yield the partition's offset range from the log as Arrow record batches."""
        from pyspark_amqp.conversion import records_to_arrow

        assert isinstance(partition, AmqpInputPartition)
        records = read_range(Path(partition.folder), partition.start, partition.end)
        chunk: list[tuple[int, int, bytes]] = []
        try:
            for record in records:
                chunk.append((record.offset, record.received_ms, record.payload))
                if len(chunk) >= self.ARROW_BATCH_ROWS:
                    yield records_to_arrow(chunk, partition.address, partition.index)
                    chunk = []
            if chunk:
                yield records_to_arrow(chunk, partition.address, partition.index)
        except CorruptLogError as err:
            if self.options.fail_on_data_loss:
                raise CorruptLogError(
                    f"{err}. Some data may have been lost (the log was deleted, trimmed by another query or damaged). "
                    "If you want the query to go on regardless, set failOnDataLoss=false."
                ) from None
            log.warning("amqp source: skipping the rest of %s..%s (failOnDataLoss=false): %s", partition.start, partition.end, err)
