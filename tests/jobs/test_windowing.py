"""The windowed max as pure functions: parsing, exact windows, ties, late data, the result contract."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.windowing import malformed_readings, parse_readings, to_result_json, windowed_max

pytestmark = pytest.mark.unit

T0 = 1_764_370_000_000  # 2025-11-28T22:46:40Z, a multiple of 5 s


def utc(ms: int) -> datetime:
    """A naive datetime as Spark returns timestamps with session time zone UTC."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(tzinfo=None)


def readings(spark: SparkSession, rows: list[tuple[str, float, int]]) -> DataFrame:
    df = spark.createDataFrame(rows, "device_id string, temperature double, ts long")
    return df.select("device_id", "temperature", F.timestamp_millis("ts").alias("ts"))


def collect(df: DataFrame) -> list[tuple]:
    return [tuple(r) for r in df.orderBy("window_start").collect()]


def test_parse_readings_keeps_good_rows_and_routes_bad_ones(spark: SparkSession) -> None:
    bodies = [
        b'{"device_id": "device-3", "temperature": 21.7, "ts": 1764370000123}',
        b'{"device_id": "device-4", "temperature": 19, "ts": 1764370000124, "extra": true}',
        b"not json",
        b'{"device_id": "device-5", "temperature": "hot", "ts": 1764370000125}',
        b'{"device_id": "device-6", "ts": 1764370000126}',
        b'{"temperature": 20.0, "ts": 1764370000127}',
        b'{"device_id": "device-7", "temperature": 20.0, "ts": "soon"}',
        b"[1, 2]",
        None,
    ]
    df = spark.createDataFrame([(b,) for b in bodies], "body binary")
    got = [tuple(r) for r in parse_readings(df).orderBy("device_id").collect()]
    assert got == [("device-3", 21.7, utc(1764370000123)), ("device-4", 19.0, utc(1764370000124))]
    assert parse_readings(df).schema.simpleString() == "struct<device_id:string,temperature:double,ts:timestamp>"
    bad = {r.raw for r in malformed_readings(df).collect()}
    assert len(bad) == len(bodies) - 2 and "not json" in bad and None in bad


def test_parse_readings_accepts_string_bodies(spark: SparkSession) -> None:
    df = spark.createDataFrame([(f'{{"device_id": "d", "temperature": 1.5, "ts": {T0}}}',)], "body string")
    assert [tuple(r) for r in parse_readings(df).collect()] == [("d", 1.5, utc(T0))]


def test_implausible_times_infinities_and_invalid_utf8_are_malformed(spark: SparkSession) -> None:
    now_ms = int(time.time() * 1000)
    good = [T0, now_ms + 60_000]  # a clock a minute ahead is still plausible (default bound: 5 minutes)
    bad_ts = [-1_000, 5_000, 946_684_799_999, now_ms + 600_000, 4_102_444_800_000, 2**63 - 1, -(2**63) + 1]
    bodies = [json.dumps({"device_id": "d", "temperature": 20.5, "ts": ts}).encode() for ts in good + bad_ts] + [
        b'{"device_id": "d", "temperature": 1e999, "ts": 1764370000001}',
        b'{"device_id": "d", "temperature": -Infinity, "ts": 1764370000002}',
        b'{"device_id": "d\xff\xfe", "temperature": 20.5, "ts": 1764370000003}',  # Spark alone would read "d\ufffd\ufffd"
    ]
    df = spark.createDataFrame([(b,) for b in bodies], "body binary")
    assert [r.ts for r in parse_readings(df).orderBy("ts").collect()] == [utc(ts) for ts in good]
    assert malformed_readings(df).count() == len(bodies) - len(good)
    # The bounds are parameters; without them an old or a future clock is a reading (but still not ts beyond timestamp range).
    in_range = df.where(
        ~F.col("body").cast("string").contains(str(2**63 - 1)) & ~F.col("body").cast("string").contains(str(-(2**63) + 1))
    )
    unbounded = parse_readings(in_range, not_before_ms=None, max_ahead_ms=None)
    assert [r.ts for r in unbounded.orderBy("ts").collect()] == [utc(ts) for ts in sorted(good + bad_ts[:5])]


def test_windowed_max_exact_rows_with_out_of_order_and_late_readings(spark: SparkSession) -> None:
    rows = [
        ("device-1", 20.0, T0 + 0),
        ("device-2", 22.5, T0 + 1_000),
        ("device-1", 21.0, T0 + 4_999),  # last millisecond of window 0
        ("device-3", 19.0, T0 + 5_000),  # first millisecond of window 1
        ("device-2", 25.0, T0 + 7_000),
        ("device-1", 23.0, T0 + 2_000),  # late and out of order: still window 0
        ("device-3", 18.0, T0 + 12_000),
        ("device-4", 30.0, T0 + 1_500),  # very late: batch has no watermark, it counts
    ]
    got = collect(windowed_max(readings(spark, rows)))
    assert got == [
        (utc(T0), utc(T0 + 5_000), 30.0, "device-4", 5),
        (utc(T0 + 5_000), utc(T0 + 10_000), 25.0, "device-2", 2),
        (utc(T0 + 10_000), utc(T0 + 15_000), 18.0, "device-3", 1),
    ]


def test_a_resent_reading_is_counted_once(spark: SparkSession) -> None:
    rows = [("device-1", 20.0, T0 + 10), ("device-2", 21.0, T0 + 20), ("device-1", 20.0, T0 + 10), ("device-2", 21.0, T0 + 20)]
    assert collect(windowed_max(readings(spark, rows))) == [(utc(T0), utc(T0 + 5_000), 21.0, "device-2", 2)]
    assert collect(windowed_max(readings(spark, rows), deduplicate=False))[0][-1] == 4
    # Same device and time but another value is another reading (e.g. a simulator's late copy), not a resend.
    other = [("device-1", 20.0, T0 + 10), ("device-1", 20.5, T0 + 10)]
    assert collect(windowed_max(readings(spark, other))) == [(utc(T0), utc(T0 + 5_000), 20.5, "device-1", 2)]


def test_ties_go_to_the_greatest_device_id_whatever_the_order(spark: SparkSession) -> None:
    rows = [("device-2", 24.0, T0 + 1), ("device-10", 24.0, T0 + 2), ("device-1", 23.9, T0 + 3)]
    for order in (rows, rows[::-1]):
        got = collect(windowed_max(readings(spark, order)))
        assert got == [(utc(T0), utc(T0 + 5_000), 24.0, "device-2", 3)]


def test_window_length_is_a_parameter(spark: SparkSession) -> None:
    rows = [("a", 1.0, T0 + 0), ("b", 2.0, T0 + 5_000), ("c", 0.5, T0 + 9_999)]
    got = collect(windowed_max(readings(spark, rows), window="10 seconds"))
    assert got == [(utc(T0), utc(T0 + 10_000), 2.0, "b", 3)]


def test_result_json_is_the_contract(spark: SparkSession) -> None:
    rows = [("device-7", 23.456, T0 + 100), ("device-1", 20.0, T0 + 200)]
    out = to_result_json(windowed_max(readings(spark, rows))).collect()
    assert [r.key for r in out] == ["2025-11-28T22:46:40.000Z"]
    assert json.loads(out[0].body) == {
        "window_start": "2025-11-28T22:46:40.000Z",
        "window_end": "2025-11-28T22:46:45.000Z",
        "max_temperature": 23.456,
        "device_id": "device-7",
        "count": 2,
    }


def test_result_json_is_utc_whatever_the_session_time_zone(spark: SparkSession) -> None:
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        out = to_result_json(windowed_max(readings(spark, [("d", 1.0, T0)]))).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)
    assert json.loads(out[0].body)["window_start"] == "2025-11-28T22:46:40.000Z"
