"""Spark's windowed max and the plain-Python oracle agree on simulated data (late events and spikes included)."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import SparkSession

from jobs.windowing import parse_readings, to_result_json, windowed_max
from simulators.model import ModelConfig, TemperatureModel
from tests.jobs.oracle import expected_windows

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("seed", [1, 2])
def test_spark_windowed_max_matches_the_oracle(spark: SparkSession, seed: int) -> None:
    config = ModelConfig(
        devices=13, rate=50.0, start_ms=1_764_370_000_000, seed=seed, late_fraction=0.1, late_by_ms=7000, spike_fraction=0.01
    )
    readings = TemperatureModel(config).take(3000)  # a minute of event time
    bodies = spark.createDataFrame([(r.to_json().encode(),) for r in readings], "body binary")
    got = [json.loads(r.body) for r in to_result_json(windowed_max(parse_readings(bodies))).orderBy("key").collect()]
    assert got == expected_windows(readings)
    assert len(got) >= 12
