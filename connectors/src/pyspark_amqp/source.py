"""The streaming reader of the ``amqp`` source: Spark offsets over the write-ahead log.

Where each hook runs (PySpark 4.2+):

- ``initialOffset``, ``latestOffset``, ``partitions``, ``commit``, ``stop`` run in one
  long-lived Python process on the driver. The first of them starts the ingest processes
  (one per address and receiver), which receive, log and accept.
- ``read`` runs in executor Python workers on a separate, unpickled copy of this reader
  that has no ingest processes: it reads the offset range from the log folder.
- ``commit(end)`` for batch N arrives only when batch N+1 is planned, and the last batch's
  commit never arrives; settlement is therefore never tied to it. It only trims the log.

Offsets are :class:`~pyspark_amqp.offsets.AmqpSourceOffset`: the next log offset per log
partition (one per address and receiver).

Read limits: ``maxMessagesPerTrigger`` is Spark's ``ReadMaxRows``; ``minMessagesPerTrigger``
is ``ReadMinRows`` with ``maxTriggerDelay`` as Kafka's source has them: a micro-batch waits
until that many messages are logged or the delay since the last batch has passed. Spark
hands a Python source its own default limit back (it cannot compose two), so with both
options the reader applies the maximum itself. ``Trigger.AvailableNow`` passes
``ReadAllAvailable`` and ignores both, as Spark documents.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyspark.sql.datasource import DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    ReadMinRows,
    SupportsTriggerAvailableNow,
)

from pyspark_amqp.offsets import AmqpSourceOffset, LogPartition
from pyspark_amqp.options import SourceOptions
from pyspark_amqp.wal import CorruptLogError, first_offset, read_range, trim

log = logging.getLogger("pyspark_amqp.source")

ARROW_BATCH_ROWS = 8192


LogRecord = tuple[int, int, bytes]
"""``(offset, received_ms, encoded message)`` as read from the log."""


class AmqpInputPartition(InputPartition):
    """An offset range ``[start, end)`` of one log partition.

    Executors read it from ``folder`` (``sharedLogDir=true``: the log on storage they share with
    the driver), or get it in ``records``, read by the driver (``sharedLogDir=false``: no shared
    storage; the records travel in the task, so a micro-batch's size is bounded by the driver's
    memory and the task size: set ``maxMessagesPerTrigger``).
    """

    def __init__(
        self, address: str, index: int, folder: str, start: int, end: int, records: list[LogRecord] | None = None
    ) -> None:
        super().__init__((address, index, start, end))
        self.address = address
        self.index = index
        self.folder = folder
        self.start = start
        self.end = end
        self.records = records


def log_partition(part: LogPartition, folder: Path, start: int, end: int, options: SourceOptions) -> AmqpInputPartition:
    """Driver: the input partition for ``[start, end)`` of ``part``, carrying its records unless executors share ``logDir``."""
    records = None if options.shared_log_dir else list(_log_records(folder, start, end, options.fail_on_data_loss))
    return AmqpInputPartition(part.address, part.index, str(folder), start, end, records)


def _log_records(folder: Path, start: int, end: int, fail_on_data_loss: bool) -> Iterator[LogRecord]:
    try:
        for record in read_range(folder, start, end):
            yield record.offset, record.received_ms, record.payload
    except CorruptLogError as err:
        if fail_on_data_loss:
            raise CorruptLogError(
                f"{err}. Some data may have been lost (the log was deleted, trimmed by another query or damaged). "
                "If you want the query to go on regardless, set failOnDataLoss=false."
            ) from None
        log.warning("amqp source: skipping the rest of %s..%s (failOnDataLoss=false): %s", start, end, err)


def split_limit(available: dict[Any, int], limit: int) -> dict[Any, int]:
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


def ingest_processes(options: SourceOptions, folders: dict[LogPartition, Path], **spec_overrides: Any) -> dict[LogPartition, Any]:
    """One (not yet started) ingest process per log partition, receiving into ``folders``."""
    from pyspark_amqp.ingest import IngestProcess, IngestSpec

    procs = {}
    for part, folder in folders.items():
        fields: dict[str, Any] = {
            "connection": options.connection,
            "address": part.address,
            "log_folder": folder,
            "credit": options.credit,
            "max_buffered_messages": options.max_buffered_messages,
            "at_most_once": options.at_most_once,
            "segment_bytes": options.log_segment_bytes,
            "link_name": f"spark-amqp-{part.key}",
            "selector": options.selector,
        }
        procs[part] = IngestProcess(IngestSpec(**{**fields, **spec_overrides}))
    return procs


def start_all(procs: dict[LogPartition, Any], timeout: float) -> None:
    """Start the processes and wait until every link is attached; stop them all if one fails."""
    for proc in procs.values():
        proc.start()
    try:
        for proc in procs.values():
            proc.wait_attached(timeout)
    except BaseException:
        for proc in procs.values():
            proc.stop()
        raise


def read_log_range(partition: AmqpInputPartition, fail_on_data_loss: bool, include_annotations: bool) -> Iterator[Any]:
    """Yield a partition's offset range as Arrow record batches (runs on executors)."""
    from pyspark_amqp.conversion import records_to_arrow

    records: Any = partition.records
    if records is None:
        records = _log_records(Path(partition.folder), partition.start, partition.end, fail_on_data_loss)
    chunk: list[LogRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= ARROW_BATCH_ROWS:
            yield records_to_arrow(chunk, partition.address, partition.index, include_annotations)
            chunk = []
    if chunk:
        yield records_to_arrow(chunk, partition.address, partition.index, include_annotations)


class TriggerDelay:
    """Kafka's ``minOffsetsPerTrigger``/``maxTriggerDelay`` rule: hold a batch back while fewer than
    ``min_rows`` are available, unless ``max_delay_s`` has passed since the last batch went out."""

    def __init__(self, max_delay_s: float, clock: Any = time.monotonic) -> None:
        self.max_delay_s = max_delay_s
        self.clock = clock
        self.last_trigger = float("-inf")  # like Kafka: the first batch is never held back

    def hold_back(self, available: int, min_rows: int) -> bool:
        now = self.clock()
        if now - self.last_trigger >= self.max_delay_s:
            self.last_trigger = now
            return False
        if available < min_rows:
            return True
        self.last_trigger = now
        return False


class AmqpStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Spark's side of the source; see the module docstring for where each hook runs."""

    QUIET_S = 0.5

    def __init__(self, options: SourceOptions) -> None:
        self.options = options
        self.partitions_ = [LogPartition(a, i) for a in options.addresses for i in range(options.receivers)]
        self._ingest: dict[LogPartition, Any] | None = None
        self._available_now: AmqpSourceOffset | None = None
        self._delay = TriggerDelay(options.max_trigger_delay_s)

    def __getstate__(self) -> dict[str, Any]:
        # Executors get a copy without the driver's ingest processes.
        state = dict(self.__dict__)
        state["_ingest"] = None
        return state

    # --- driver side -------------------------------------------------------------------
    def _folder(self, part: LogPartition) -> Path:
        return part.folder(self.options.log_dir)

    def _started(self) -> dict[LogPartition, Any]:
        """The ingest processes, started (and attached) on first use."""
        if self._ingest is None:
            procs = ingest_processes(self.options, {p: self._folder(p) for p in self.partitions_})
            self._ingest = procs
            try:
                start_all(procs, self.options.start_timeout_s)
            except BaseException:
                self._ingest = None
                raise
        return self._ingest

    def _durable(self) -> AmqpSourceOffset:
        """What is durable in the log now; a receiver process that died is replaced first."""
        procs = self._started()
        for part, proc in list(procs.items()):
            if not proc.process.is_alive():
                # Its log is intact; a fresh process recovers it and the broker redelivers the rest.
                log.warning(
                    "amqp source: the receiver for %s exited (code %s); starting a new one", part.key, proc.process.exitcode
                )
                procs[part] = proc.restarted(self.options.start_timeout_s)
        return AmqpSourceOffset({part: proc.durable for part, proc in procs.items()})

    def initialOffset(self) -> dict[str, int]:
        """Driver, once per new query: where the log's unread part begins (its committed offset)."""
        self._started()
        return AmqpSourceOffset({p: first_offset(self._folder(p)) for p in self.partitions_}).to_json()

    def getDefaultReadLimit(self) -> ReadLimit:
        """Driver, once per query: ``ReadMinRows`` if ``minMessagesPerTrigger`` is set, else ``ReadMaxRows`` or all."""
        if self.options.min_messages_per_trigger:
            return ReadMinRows(self.options.min_messages_per_trigger)
        if self.options.max_messages_per_trigger:
            return ReadMaxRows(self.options.max_messages_per_trigger)
        return ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        """Driver, at the start of a ``Trigger.AvailableNow`` query: fix the target offset.

        AMQP has no "end offset" to ask for, so the backlog counts as read when no receiver
        logged anything new for ``QUIET_S`` seconds (bounded by ``startTimeout``).
        """
        deadline = time.monotonic() + self.options.start_timeout_s
        last = self._durable()
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < self.QUIET_S:
            time.sleep(0.05)  # polling shared-memory counters: there is no event to wait on
            now = self._durable()
            if now != last:
                last, quiet_since = now, time.monotonic()
        self._available_now = last

    def latestOffset(self, start: dict[str, int], limit: ReadLimit) -> dict[str, int]:
        """Driver, before every micro-batch: the end of the next batch within ``limit``.

        Returns ``start`` unchanged to skip a batch (``ReadMinRows`` not reached yet).
        """
        latest = self._durable()
        if self._available_now is not None:
            latest = AmqpSourceOffset({p: min(n, self._available_now.get(p, n)) for p, n in latest.positions.items()})
        begin_at = AmqpSourceOffset.from_json(start)
        begin = {p: begin_at.get(p, first_offset(self._folder(p))) for p in latest}
        available = {p: max(0, latest[p] - begin[p]) for p in latest}
        max_rows = limit.max_rows if isinstance(limit, ReadMaxRows) else None
        if isinstance(limit, ReadMinRows):
            if self._delay.hold_back(sum(available.values()), limit.min_rows):
                available = {p: 0 for p in available}
            max_rows = self.options.max_messages_per_trigger  # the composite Spark cannot pass a Python source
        if max_rows is not None:
            available = split_limit(available, max_rows)
        end = AmqpSourceOffset({p: begin[p] + available[p] for p in latest})
        procs = self._started()
        for part in end:
            procs[part].set_planned(end[part])
        return end.to_json()

    def reportLatestOffset(self) -> dict[str, int] | None:
        """Driver, for query progress: what is durable in the log, read or not."""
        return self._durable().to_json() if self._ingest is not None else None

    def partitions(self, start: dict[str, int], end: dict[str, int]) -> list[InputPartition]:
        """Driver, per micro-batch: one input partition per log partition with records in ``[start, end)``."""
        begin_at, end_at = AmqpSourceOffset.from_json(start), AmqpSourceOffset.from_json(end)
        parts: list[InputPartition] = []
        for part in end_at:
            folder = self._folder(part)
            begin = begin_at.get(part, first_offset(folder))
            if end_at[part] > begin:
                parts.append(log_partition(part, folder, begin, end_at[part], self.options))
        return parts

    def commit(self, end: dict[str, int]) -> None:
        """Driver, when batch N+1 is planned: trim the log below ``end`` (settlement never waits for this)."""
        committed = AmqpSourceOffset.from_json(end)
        for part in committed:
            trim(self._folder(part), committed[part])

    def stop(self) -> None:
        """Driver, when the query stops: the ingest processes accept what they logged and exit."""
        if self._ingest:
            for proc in self._ingest.values():
                proc.stop()
        self._ingest = None

    # --- executor side -----------------------------------------------------------------
    def read(self, partition: InputPartition) -> Iterator[Any]:
        """Executors: the partition's offset range from the log, as Arrow record batches."""
        assert isinstance(partition, AmqpInputPartition)
        return read_log_range(partition, self.options.fail_on_data_loss, self.options.include_annotations)
