"""The windowed max on a real stream: windows close with the watermark, too-late readings drop.

A text-file source stands in for the AMQP source (same ``body`` parsing, one
file per micro-batch), so the watermark behaviour is checked without any
service; every wait is ``processAllAvailable``, a real signal.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from jobs.windowing import parse_readings, windowed_max

pytestmark = pytest.mark.unit

T0 = 1_764_370_000_000  # a multiple of 5 s


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(tzinfo=None)


def start_windowed_max(
    spark: SparkSession, tmp_path: Path, prefix: str, observe_as: str | None = None
) -> tuple[StreamingQuery, str]:
    """The windowed max over a text-file stream in ``tmp_path/in``, into a memory table; returns (query, table name)."""
    (tmp_path / "in").mkdir()
    stream = spark.readStream.format("text").option("maxFilesPerTrigger", 1).load(str(tmp_path / "in"))
    result = windowed_max(parse_readings(stream, body="value", observe_as=observe_as), window="5 seconds", watermark="10 seconds")
    name = f"{prefix}_{tmp_path.name.replace('-', '_')}"
    query = (
        result.writeStream.format("memory")
        .queryName(name)
        .outputMode("append")
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .start()
    )
    return query, name


def feed_batch(tmp_path: Path, i: int, rows: list) -> None:
    """One micro-batch: a file of readings ((device, temperature, ms after T0) or a raw line), moved in atomically."""
    lines = [r if isinstance(r, str) else json.dumps({"device_id": r[0], "temperature": r[1], "ts": T0 + r[2]}) for r in rows]
    tmp = tmp_path / f"{i}.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.rename(tmp_path / "in" / f"{i:03d}.json")  # atomic: the source never sees half a file


def test_append_mode_emits_closed_windows_and_drops_too_late_readings(spark: SparkSession, tmp_path: Path) -> None:
    query, name = start_windowed_max(spark, tmp_path, "windowed_max")
    batches = [
        [("a", 20.0, 1_000), ("b", 21.0, 6_000)],  # max event time 6 s: nothing closes
        [("c", 22.0, 21_000)],  # watermark -> 11 s: [0,5) and [5,10) close
        [("d", 99.0, 2_000), ("f", 98.0, 9_000), ("e", 23.0, 12_000)],  # d, f older than the watermark: dropped
        [("g", 24.0, 40_000)],  # watermark -> 30 s: [10,15) and [20,25) close; [40,45) stays open
    ]
    try:
        for i, rows in enumerate(batches):
            feed_batch(tmp_path, i, rows)
            query.processAllAvailable()
        got = [tuple(r) for r in spark.table(name).orderBy("window_start").collect()]
    finally:
        query.stop()
    assert query.exception() is None
    assert got == [
        (utc(T0), utc(T0 + 5_000), 20.0, "a", 1),
        (utc(T0 + 5_000), utc(T0 + 10_000), 21.0, "b", 1),
        (utc(T0 + 10_000), utc(T0 + 15_000), 23.0, "e", 1),
        (utc(T0 + 20_000), utc(T0 + 25_000), 22.0, "c", 1),
    ]


def test_resent_readings_are_dropped_across_batches_and_malformed_ones_counted(spark: SparkSession, tmp_path: Path) -> None:
    query, name = start_windowed_max(spark, tmp_path, "dedup", observe_as="input")
    batches = [
        [("a", 20.0, 1_000), ("b", 21.0, 2_000)],
        [("a", 20.0, 1_000), ("c", 19.0, 3_000), "not json", '{"device_id": "x"}'],  # a resent; two malformed
        [("b", 21.0, 2_000), ("d", 18.0, 30_000)],  # b resent; watermark -> 20 s closes [0, 5)
    ]
    progress = []
    try:
        for i, rows in enumerate(batches):
            feed_batch(tmp_path, i, rows)
            query.processAllAvailable()
            progress.extend(p for p in query.recentProgress if p["numInputRows"] > 0 and p not in progress)
        got = [tuple(r) for r in spark.table(name).orderBy("window_start").collect()]
    finally:
        query.stop()
    assert query.exception() is None
    assert got == [(utc(T0), utc(T0 + 5_000), 21.0, "b", 3)]
    observed = [p["observedMetrics"]["input"] for p in progress]
    assert sum(o["messages"] for o in observed) == 8 and sum(o["malformed"] for o in observed) == 2
    dropped = sum(op["customMetrics"].get("numDroppedDuplicateRows", 0) for p in progress for op in p["stateOperators"])
    assert dropped == 2
