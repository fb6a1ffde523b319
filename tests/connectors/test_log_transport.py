"""``sharedLogDir``: where executors get a micro-batch's records from (the log on shared storage, or the task)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
from proton import Message
from pyspark_amqp import wal
from pyspark_amqp.offsets import LogPartition
from pyspark_amqp.options import parse_source_options
from pyspark_amqp.source import log_partition, read_log_range

pytestmark = pytest.mark.unit


def _log(folder: Path, bodies: list[bytes]) -> None:
    writer = wal.LogWriter(folder).open()
    for i, body in enumerate(bodies):
        writer.append(1_764_370_000_000 + i, bytes(Message(body=body, inferred=True).encode()))
    writer.flush().sync()
    writer.close()


def _bodies(partition) -> list[bytes]:
    return [b for batch in read_log_range(partition, True, False) for b in batch.column("body").to_pylist()]


def _options(tmp_path: Path, shared: str):
    return parse_source_options({"url": "amqp://h:5672", "address": "a", "logDir": str(tmp_path), "sharedLogDir": shared})


def test_records_travel_in_the_task_when_executors_cannot_see_the_log(tmp_path: Path) -> None:
    folder = tmp_path / "a-0"
    _log(folder, [b"r0", b"r1", b"r2", b"r3"])
    partition = log_partition(LogPartition("a", 0), folder, 1, 3, _options(tmp_path, "false"))
    shipped = pickle.loads(pickle.dumps(partition))  # what reaches an executor
    shutil.rmtree(folder)  # the executor's host has no such folder
    assert _bodies(shipped) == [b"r1", b"r2"]


def test_by_default_executors_read_the_shared_log(tmp_path: Path) -> None:
    folder = tmp_path / "a-0"
    _log(folder, [b"r0", b"r1"])
    partition = log_partition(LogPartition("a", 0), folder, 0, 2, _options(tmp_path, "true"))
    assert partition.records is None
    assert _bodies(partition) == [b"r0", b"r1"]
    shutil.rmtree(folder)
    with pytest.raises(wal.CorruptLogError, match="not in the log"):
        _bodies(partition)


def test_a_range_missing_from_the_driver_log_fails_on_the_driver(tmp_path: Path) -> None:
    folder = tmp_path / "a-0"
    _log(folder, [b"r0"])
    with pytest.raises(wal.CorruptLogError, match="failOnDataLoss=false"):
        log_partition(LogPartition("a", 0), folder, 0, 5, _options(tmp_path, "false"))
