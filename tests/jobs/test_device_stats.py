"""Per-device window statistics and outlier flags: exact rows, and the numpy scoring alone."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.device_stats import DeviceState, OutlierConfig, device_window_stats, flag_outliers, score_device

pytestmark = pytest.mark.unit

T0 = 1_764_369_960_000  # a multiple of 60 s


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(tzinfo=None)


def readings(spark: SparkSession, rows: list[tuple[str, float, int]]) -> DataFrame:
    df = spark.createDataFrame(rows, "device_id string, temperature double, ts long")
    return df.select("device_id", "temperature", F.timestamp_millis("ts").alias("ts"))


def test_device_window_stats_exact_rows(spark: SparkSession) -> None:
    rows = [
        ("device-1", 20.0, T0 + 1_000),
        ("device-1", 22.0, T0 + 59_999),
        ("device-1", 24.0, T0 + 30_000),
        ("device-2", 18.0, T0 + 5_000),
        ("device-1", 30.0, T0 + 60_000),  # next minute
    ]
    got = [tuple(r) for r in device_window_stats(readings(spark, rows)).orderBy("window_start", "device_id").collect()]
    assert got == [
        (utc(T0), utc(T0 + 60_000), "device-1", 3, 22.0, 20.0, 24.0, 2.0),
        (utc(T0), utc(T0 + 60_000), "device-2", 1, 18.0, 18.0, 18.0, None),
        (utc(T0 + 60_000), utc(T0 + 120_000), "device-1", 1, 30.0, 30.0, 30.0, None),
    ]


def test_score_device_flags_a_spike_after_warm_up_and_ignores_it_in_the_state() -> None:
    config = OutlierConfig(alpha=0.5, threshold=3.0, min_count=3, min_std=0.5)
    temps = np.array([20.0, 20.0, 20.0, 20.0, 35.0, 20.0])
    means, stds, flags, state = score_device(DeviceState(), temps, config)
    assert flags.tolist() == [False, False, False, False, True, False]
    assert math.isnan(means[0]) and means[1:].tolist() == [20.0] * 5
    assert stds[1:].tolist() == [0.5] * 5  # the floor: a perfectly steady device
    assert state == DeviceState(count=5, mean=20.0, var=0.0)


def test_score_device_needs_min_count_and_continues_from_state() -> None:
    config = OutlierConfig(alpha=0.5, threshold=3.0, min_count=3, min_std=0.5)
    _, _, flags, state = score_device(DeviceState(), np.array([20.0, 40.0]), config)
    assert not flags.any() and state.count == 2 and state.mean == 30.0 and state.var == pytest.approx(100.0)
    # In two calls the same as in one: the state carries everything.
    m1, s1, f1, st1 = score_device(DeviceState(), np.array([20.0, 40.0, 31.0, 90.0]), config)
    m2, s2, f2, st2 = score_device(state, np.array([31.0, 90.0]), config)
    assert np.allclose(m1[2:], m2) and np.allclose(s1[2:], s2) and (f1[2:] == f2).all() and st1 == st2
    assert f2.tolist() == [False, True]


def test_outlier_config_validates() -> None:
    with pytest.raises(ValueError, match="alpha"):
        OutlierConfig(alpha=0.0)


def test_flag_outliers_per_device_in_event_time_order(spark: SparkSession) -> None:
    config = OutlierConfig(alpha=0.5, threshold=3.0, min_count=3, min_std=0.5)
    rows = [("device-1", 20.0, T0 + i * 1000) for i in range(5)] + [("device-1", 35.0, T0 + 2_500)]
    rows += [("device-2", 35.0, T0 + i * 1000) for i in range(5)]  # steady at 35: never an outlier
    got = flag_outliers(readings(spark, rows[::-1]), config).where("is_outlier").collect()
    assert [(r.device_id, r.temperature, r.ts, r.recent_mean) for r in got] == [("device-1", 35.0, utc(T0 + 2_500), 20.0)]
    assert flag_outliers(readings(spark, rows), config).count() == len(rows)


def test_flag_outliers_keeps_state_across_micro_batches(spark: SparkSession, tmp_path) -> None:  # noqa: ANN001
    import json

    config = OutlierConfig(alpha=0.5, threshold=3.0, min_count=3, min_std=0.5)
    incoming = tmp_path / "in"
    incoming.mkdir()
    stream = spark.readStream.format("text").option("maxFilesPerTrigger", 1).load(str(incoming))
    from jobs.windowing import parse_readings

    name = f"outliers_{tmp_path.name.replace('-', '_')}"
    query = (
        flag_outliers(parse_readings(stream, body="value"), config)
        .writeStream.format("memory")
        .queryName(name)
        .outputMode("append")
        .option("checkpointLocation", str(tmp_path / "cp"))
        .start()
    )
    batches = [[20.0, 20.0, 20.0], [20.0, 35.0]]  # the spike comes in the second micro-batch
    try:
        for i, temps in enumerate(batches):
            lines = [
                json.dumps({"device_id": "device-1", "temperature": t, "ts": T0 + 1000 * (10 * i + j)})
                for j, t in enumerate(temps)
            ]
            (tmp_path / "f.tmp").write_text("\n".join(lines) + "\n")
            (tmp_path / "f.tmp").rename(incoming / f"{i:03d}.json")
            query.processAllAvailable()
        got = [(r.temperature, r.is_outlier) for r in spark.table(name).orderBy("ts").collect()]
    finally:
        query.stop()
    assert got == [(20.0, False), (20.0, False), (20.0, False), (20.0, False), (35.0, True)]
