"""Per-device statistics and outlier flags, as pure functions (the Kafka-path job's logic).

Two outputs from one stream of readings ``device_id, temperature, ts``:

* :func:`device_window_stats`: per device and event-time minute, count, mean,
  min, max and sample standard deviation.
* :func:`flag_outliers`: every reading with the device's recent mean and
  standard deviation *before* that reading (exponentially weighted, kept per
  device in streaming state) and ``is_outlier`` when it lies more than
  ``threshold`` deviations away. The scoring itself is :func:`score_device`,
  plain numpy, so it is tested without Spark.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout
from pyspark.sql.types import BooleanType, DoubleType, LongType, StringType, StructField, StructType, TimestampType


def device_window_stats(readings: DataFrame, window: str = "1 minute", watermark: str = "1 minute") -> DataFrame:
    """Per device and tumbling event-time window: ``count, mean, min, max, stddev``.

    Output columns: ``window_start, window_end, device_id, count, mean, min,
    max, stddev``. ``stddev`` is the sample deviation, null for a window with
    a single reading. In streaming append mode a window is emitted once the
    watermark passes its end.
    """
    t = F.col("temperature")
    return (
        readings.withWatermark("ts", watermark)
        .groupBy(F.window("ts", window).alias("w"), F.col("device_id"))
        .agg(
            F.count(F.lit(1)).alias("count"),
            F.avg(t).alias("mean"),
            F.min(t).alias("min"),
            F.max(t).alias("max"),
            F.stddev_samp(t).alias("stddev"),
        )
        .select(
            F.col("w.start").alias("window_start"),
            F.col("w.end").alias("window_end"),
            "device_id",
            "count",
            "mean",
            "min",
            "max",
            "stddev",
        )
    )


@dataclass(frozen=True, slots=True)
class OutlierConfig:
    """``alpha``: weight of a new reading in the running mean/variance (0..1];
    ``threshold``: deviations from the mean that make an outlier;
    ``min_count``: readings a device needs before anything is flagged;
    ``min_std``: floor of the deviation, so a very steady device is not flagged for noise.
    """

    alpha: float = 0.05
    threshold: float = 4.0
    min_count: int = 20
    min_std: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be within (0, 1], got {self.alpha}")
        if self.threshold <= 0 or self.min_std < 0 or self.min_count < 0:
            raise ValueError("threshold must be > 0, min_std and min_count >= 0")


@dataclass(frozen=True, slots=True)
class DeviceState:
    """Running state of one device: readings seen, exponentially weighted mean and variance."""

    count: int = 0
    mean: float = 0.0
    var: float = 0.0


def score_device(
    state: DeviceState, temperatures: np.ndarray, config: OutlierConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, DeviceState]:
    """Score readings of one device in event-time order against its running state.

    Returns ``(mean_before, std_before, is_outlier, new_state)``; the mean and
    deviation are those *before* each reading (NaN for the first reading).

    Pitfall: outliers do not update the state, so one spike neither drags the
    mean nor inflates the deviation and hides the next spike; the price is
    that a genuine lasting step change keeps being flagged.
    """
    n, mean, var = state.count, state.mean, state.var
    size = len(temperatures)
    means, stds, flags = np.full(size, np.nan), np.full(size, np.nan), np.zeros(size, dtype=bool)
    for i, x in enumerate(np.asarray(temperatures, dtype=float)):
        if n > 0:
            std = max(float(np.sqrt(var)), config.min_std)
            means[i], stds[i] = mean, std
            flags[i] = n >= config.min_count and abs(x - mean) > config.threshold * std
        if flags[i]:
            continue
        if n == 0:
            mean, var = x, 0.0
        else:
            diff = x - mean
            incr = config.alpha * diff
            mean += incr
            var = (1.0 - config.alpha) * (var + diff * incr)
        n += 1
    return means, stds, flags, DeviceState(n, mean, var)


OUTLIER_SCHEMA = StructType(
    [
        StructField("device_id", StringType()),
        StructField("temperature", DoubleType()),
        StructField("ts", TimestampType()),
        StructField("recent_mean", DoubleType()),
        StructField("recent_std", DoubleType()),
        StructField("is_outlier", BooleanType()),
    ]
)
_STATE_SCHEMA = StructType(
    [StructField("count", LongType()), StructField("mean", DoubleType()), StructField("var", DoubleType())]
)


def _score_frame(key: str, pdf: pd.DataFrame, state: DeviceState, config: OutlierConfig) -> tuple[pd.DataFrame, DeviceState]:
    pdf = pdf.sort_values("ts", kind="stable")
    means, stds, flags, state = score_device(state, pdf["temperature"].to_numpy(), config)
    out = pd.DataFrame(
        {
            "device_id": key,
            "temperature": pdf["temperature"].to_numpy(),
            "ts": pdf["ts"].to_numpy(),
            "recent_mean": means,
            "recent_std": stds,
            "is_outlier": flags,
        }
    )
    return out, state


def _stateful(config: OutlierConfig):  # noqa: ANN202 - a pandas UDF closure
    def score(key: tuple[str], batches: Iterator[pd.DataFrame], state: GroupState) -> Iterator[pd.DataFrame]:
        current = DeviceState(*state.get) if state.exists else DeviceState()
        out, current = _score_frame(key[0], pd.concat(list(batches), ignore_index=True), current, config)
        state.update((current.count, current.mean, current.var))
        yield out

    return score


def _stateless(config: OutlierConfig):  # noqa: ANN202 - a pandas UDF closure
    def score(key: tuple[str], pdf: pd.DataFrame) -> pd.DataFrame:
        return _score_frame(key[0], pdf, DeviceState(), config)[0]

    return score


def flag_outliers(readings: DataFrame, config: OutlierConfig = OutlierConfig()) -> DataFrame:
    """Every reading with ``recent_mean, recent_std, is_outlier`` (see :func:`score_device`).

    Streaming: state is kept per device (in the checkpoint) across
    micro-batches; within a micro-batch a device's readings are scored in
    event-time order, across micro-batches in arrival order. Output mode
    ``append``. On a batch DataFrame all of a device's readings are scored in
    event-time order from a fresh state (Spark has no state in batch queries).
    """
    grouped = readings.select("device_id", "temperature", "ts").groupBy("device_id")
    if not readings.isStreaming:
        return grouped.applyInPandas(_stateless(config), OUTLIER_SCHEMA)
    return grouped.applyInPandasWithState(_stateful(config), OUTLIER_SCHEMA, _STATE_SCHEMA, "append", GroupStateTimeout.NoTimeout)
