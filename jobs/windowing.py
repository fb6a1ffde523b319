"""The windowed max of the demo as pure DataFrame functions.

``parse_readings`` turns the AMQP source's (or Kafka's) binary ``body`` into
readings, ``windowed_max`` aggregates them per event-time tumbling window, and
``to_result_json`` renders the result contract. All three work on batch and
streaming DataFrames alike, so the same code is unit-tested on small batch
DataFrames with exact expected rows.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

READING_SCHEMA = StructType(
    [
        StructField("device_id", StringType()),
        StructField("temperature", DoubleType()),
        StructField("ts", LongType()),
    ]
)
"""The temperature contract's JSON body; ``ts`` is epoch milliseconds."""

ISO_UTC = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"


NOT_BEFORE_MS = 946_684_800_000
"""2000-01-01T00:00:00Z: an earlier ``ts`` is a device clock that was never set (it boots at 1970)."""
MAX_AHEAD_MS = 5 * 60 * 1000
"""A ``ts`` this far ahead of the processing time is a wrong device clock, not a reading."""


def _parsed(df: DataFrame, body: str) -> DataFrame:
    text = F.col(body).cast("string")
    return df.select(text.alias("raw"), F.from_json(text, READING_SCHEMA).alias("r"))


def _valid(p: DataFrame, not_before_ms: int | None, max_ahead_ms: int | None) -> Column:
    """A reading: UTF-8 JSON with every field of the right type, a finite temperature and,
    where the bounds are given, ``not_before_ms <= ts <= processing time + max_ahead_ms``."""
    r = p.r
    valid = (
        r.isNotNull()
        & F.is_valid_utf8(p.raw)
        & r.device_id.isNotNull()
        & r.temperature.isNotNull()
        & r.ts.isNotNull()
        & (F.abs(r.temperature) < F.lit(float("inf")))  # neither NaN (greater than infinity in Spark) nor infinite
    )
    if not_before_ms is not None:
        valid &= r.ts >= F.lit(not_before_ms)
    if max_ahead_ms is not None:
        valid &= r.ts <= F.unix_millis(F.current_timestamp()) + F.lit(max_ahead_ms)
    return F.coalesce(valid, F.lit(False))


def parse_readings(
    df: DataFrame,
    body: str = "body",
    observe_as: str | None = None,
    not_before_ms: int | None = NOT_BEFORE_MS,
    max_ahead_ms: int | None = MAX_AHEAD_MS,
) -> DataFrame:
    """Readings ``device_id string, temperature double, ts timestamp`` from JSON bodies.

    ``body`` may be binary (UTF-8) or string. Malformed rows (not JSON, not
    UTF-8, a missing field, a value of the wrong type such as ``"ts": "soon"``,
    a temperature that is NaN or infinite) are dropped here;
    :func:`malformed_readings` returns exactly those rows, for a dead-letter
    sink. Extra JSON fields are ignored.

    Implausible event times count as malformed too: a ``ts`` before
    ``not_before_ms`` (default 2000-01-01) or more than ``max_ahead_ms``
    (default 5 minutes) ahead of the processing time (the micro-batch's
    timestamp). One reading from a clock in the year 2100 would otherwise move
    the watermark there, close every open window and drop every later reading
    as late; ``None`` turns a bound off.

    ``observe_as``: count every micro-batch's ``messages`` and ``malformed``
    rows as Spark observed metrics under this name (a query's progress shows
    them in ``observedMetrics``), so skipped input is counted, not hidden.
    """
    p = _parsed(df, body)
    p = p.withColumn("valid", _valid(p, not_before_ms, max_ahead_ms))
    if observe_as:
        p = p.observe(observe_as, F.count(F.lit(1)).alias("messages"), F.count_if(~p.valid).alias("malformed"))
    return p.where(p.valid).select(
        p.r.device_id.alias("device_id"),
        p.r.temperature.alias("temperature"),
        F.timestamp_millis(p.r.ts).alias("ts"),
    )


def malformed_readings(
    df: DataFrame, body: str = "body", not_before_ms: int | None = NOT_BEFORE_MS, max_ahead_ms: int | None = MAX_AHEAD_MS
) -> DataFrame:
    """The rows :func:`parse_readings` drops, as ``raw string`` (the body as text)."""
    p = _parsed(df, body)
    return p.where(~_valid(p, not_before_ms, max_ahead_ms)).select("raw")


def windowed_max(
    readings: DataFrame, window: str = "5 seconds", watermark: str = "10 seconds", deduplicate: bool = True
) -> DataFrame:
    """Per event-time tumbling window: the max temperature, the device that had it, the count.

    Input: ``device_id, temperature, ts`` (timestamp). Output columns:
    ``window_start, window_end`` (timestamps; a window is ``[start, end)``),
    ``max_temperature``, ``device_id``, ``count``.

    Ties: when several readings share the max, the greatest ``device_id``
    (string order) wins, so the result does not depend on arrival order.

    Streaming: with the watermark, ``outputMode("append")`` emits a window once
    the max event time seen exceeds ``window_end + watermark``; a reading
    whose event time is older than the watermark when it arrives is dropped.
    On batch DataFrames the watermark has no effect (nothing is late).

    ``deduplicate``: a reading repeated verbatim (same ``device_id``, ``ts`` and
    ``temperature``) within the watermark is dropped before it is counted. Devices
    resend readings whose acknowledgement they did not see (AMQP at-least-once),
    so without this a lost connection could inflate ``count``. Spark reports
    what it dropped as ``numDroppedDuplicateRows`` in the query progress.
    """
    top = F.max(F.struct(F.col("temperature"), F.col("device_id"))).alias("top")
    readings = readings.withWatermark("ts", watermark)
    if deduplicate:
        keys = ["device_id", "ts", "temperature"]
        readings = readings.dropDuplicatesWithinWatermark(keys) if readings.isStreaming else readings.dropDuplicates(keys)
    return (
        readings.groupBy(F.window("ts", window).alias("w"))
        .agg(top, F.count(F.lit(1)).alias("count"))
        .select(
            F.col("w.start").alias("window_start"),
            F.col("w.end").alias("window_end"),
            F.col("top.temperature").alias("max_temperature"),
            F.col("top.device_id").alias("device_id"),
            F.col("count"),
        )
    )


def iso_utc(col: Column | str, session_time_zone: str) -> Column:
    """A timestamp as ISO-8601 UTC text (``2025-11-28T22:46:40.000Z``) whatever the session zone.

    ``date_format`` renders in the session time zone; shifting by that zone
    first makes the rendered wall time the UTC one.
    """
    c = F.col(col) if isinstance(col, str) else col
    return F.date_format(F.to_utc_timestamp(c, session_time_zone), ISO_UTC)


def to_result_json(results: DataFrame) -> DataFrame:
    """The result contract: a ``body`` string column (JSON) and a ``key`` (window start, ISO UTC).

    ``key`` identifies the window (use it as the Kafka key or message id, so a
    replayed window is recognisable downstream).
    """
    tz = results.sparkSession.conf.get("spark.sql.session.timeZone") or "UTC"
    start = iso_utc("window_start", tz)
    body = F.to_json(
        F.struct(
            start.alias("window_start"),
            iso_utc("window_end", tz).alias("window_end"),
            F.col("max_temperature"),
            F.col("device_id"),
            F.col("count"),
        )
    )
    return results.select(start.alias("key"), body.alias("body"))
