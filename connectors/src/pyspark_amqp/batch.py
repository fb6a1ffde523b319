"""The batch reader of the ``amqp`` source: ``spark.read.format("amqp")``.

Where each hook runs: ``partitions()`` runs once per read in a Python worker on the driver
while Spark plans the query; it receives, then returns offset ranges of the log. ``read()``
runs on the executors and reads those ranges from the log, as the stream does.

Modes:

- ``consume`` (default) takes messages off the queue through the same path as the stream:
  each delivery is written to the durable log in ``logDir`` and accepted only then. The read
  receives until the receivers are quiet for ``quietPeriod``, ``maxMessages`` were logged, or
  ``timeout`` passed, and returns the log from its committed offset to there. A crash while
  receiving loses nothing: what was logged is still in the log (the next read with the same
  ``logDir`` returns it first), and what was not is still on the broker.
- ``browse`` attaches with distribution mode ``copy``: the broker sends copies and removes
  nothing. The copies go to a log folder of their own for the executors to read.

When is a consumed message "taken"? When the read is planned (a DataFrame's first action):
the log's committed offset then moves past the read's range, so the next read starts after
it. The records themselves stay in the log until the next read of the same ``logDir``, so
every action on the same DataFrame sees the same rows (a re-planned read with the same read
id returns the same ranges without receiving again). Pitfall: only the latest read of a
``logDir`` is kept; an older DataFrame evaluated again after a newer read receives anew.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyspark.sql.datasource import DataSourceReader, InputPartition

from pyspark_amqp.offsets import AmqpSourceOffset, LogPartition
from pyspark_amqp.options import SourceOptions
from pyspark_amqp.source import AmqpInputPartition, ingest_processes, log_partition, read_log_range, split_limit, start_all
from pyspark_amqp.wal import first_offset, mark_committed, trim

log = logging.getLogger("pyspark_amqp.batch")

READ_RECORD = "batch-read-{mode}.json"  # the last read of each mode: its id and ranges
_POLL_S = 0.05


class AmqpBatchReader(DataSourceReader):
    """Spark's side of a batch read; see the module docstring for the modes and where each hook runs."""

    def __init__(self, options: SourceOptions, read_id: str) -> None:
        self.options = options
        self.read_id = read_id
        self.parts = [LogPartition(a, i) for a in options.addresses for i in range(options.receivers)]

    # --- driver side (the planning worker) ----------------------------------------------
    def _log_root(self) -> Path:
        if self.options.browse:
            return self.options.log_dir / f"browse-{self.read_id}"
        return self.options.log_dir

    def partitions(self) -> list[InputPartition]:
        """Receive (once per read id), then hand the executors the log ranges this read returns."""
        root = self._log_root()
        ranges = self._recorded_ranges()
        if ranges is None:
            ranges = self._receive(root)
        return [
            log_partition(p, p.folder(root), start, end, self.options)
            for p, (start, end) in sorted(ranges.items())
            if end > start
        ]

    def _recorded_ranges(self) -> dict[LogPartition, tuple[int, int]] | None:
        """The ranges this read id was already given (Spark may plan a DataFrame more than once)."""
        try:
            record = json.loads((self.options.log_dir / READ_RECORD.format(mode=self.options.mode)).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if record.get("id") != self.read_id:
            return None
        return {LogPartition.parse(k): (int(v[0]), int(v[1])) for k, v in record["ranges"].items()}

    def _forget_earlier_reads(self) -> None:
        """Free what earlier reads of this ``logDir`` returned: their DataFrames can no longer be re-read."""
        if self.options.browse:
            for old in self.options.log_dir.glob("browse-*"):
                if old.name != f"browse-{self.read_id}":
                    shutil.rmtree(old, ignore_errors=True)
        else:
            for part in self.parts:
                folder = part.folder(self.options.log_dir)
                if folder.exists():
                    trim(folder, first_offset(folder))

    def _receive(self, root: Path) -> dict[LogPartition, tuple[int, int]]:
        self.options.log_dir.mkdir(parents=True, exist_ok=True)
        self._forget_earlier_reads()
        folders = {p: p.folder(root) for p in self.parts}
        starts = AmqpSourceOffset({p: first_offset(f) for p, f in folders.items()})
        procs = ingest_processes(
            self.options,
            folders,
            browse=self.options.browse,
            max_messages=self.options.max_messages,
            max_buffered_messages=2**62,  # nothing plans batches here: never withhold credit for that
        )
        start_all(procs, self.options.start_timeout_s)
        try:
            self._wait_until_read(procs, starts)
        finally:
            for proc in procs.values():
                proc.stop()  # the last logged deliveries become durable and are accepted
        ends = AmqpSourceOffset({p: proc.durable for p, proc in procs.items()})
        available = {p: max(0, ends[p] - starts[p]) for p in folders}
        if self.options.max_messages is not None:
            available = split_limit(available, self.options.max_messages)  # the rest stays logged for the next read
        ranges = {p: (starts[p], starts[p] + available[p]) for p in folders}
        self._record(ranges)
        if not self.options.browse:
            for p, (_, end) in ranges.items():
                mark_committed(folders[p], end)
        log.info("amqp batch read %s: %d messages (%s)", self.read_id, sum(available.values()), self.options.mode)
        return ranges

    def _wait_until_read(self, procs: dict[LogPartition, Any], starts: AmqpSourceOffset) -> None:
        """Until nothing new was logged for ``quietPeriod``, ``maxMessages`` were logged, or ``timeout``."""
        opts = self.options
        deadline = time.monotonic() + opts.timeout_s
        last = -1
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            for proc in procs.values():
                if not proc.process.is_alive():
                    raise RuntimeError(f"the AMQP receiver for {proc.spec.address!r} exited: {proc.status.error or 'no error'}")
            logged = AmqpSourceOffset({p: proc.durable for p, proc in procs.items()}).total_after(starts)
            if opts.max_messages is not None and logged >= opts.max_messages:
                return
            if logged != last:
                last, quiet_since = logged, time.monotonic()
            elif time.monotonic() - quiet_since >= opts.quiet_period_s:
                return
            time.sleep(_POLL_S)  # polling shared-memory counters: there is no event to wait on
        log.warning(
            "amqp batch read %s: timeout (%.0fs) reached while messages were still arriving", self.read_id, opts.timeout_s
        )

    def _record(self, ranges: dict[LogPartition, tuple[int, int]]) -> None:
        path = self.options.log_dir / READ_RECORD.format(mode=self.options.mode)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"id": self.read_id, "mode": self.options.mode, "ranges": {p.key: list(r) for p, r in ranges.items()}})
        )
        os.replace(tmp, path)

    # --- executor side ------------------------------------------------------------------
    def read(self, partition: InputPartition) -> Iterator[Any]:
        """Executors: the partition's range from the log, as Arrow record batches."""
        if not isinstance(partition, AmqpInputPartition):
            return iter(())  # a read that found nothing planned no ranges; Spark still runs one empty task
        return read_log_range(partition, self.options.fail_on_data_loss, self.options.include_annotations)
