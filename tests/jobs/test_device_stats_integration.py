"""The Kafka-path job on the real Kafka: per-device minute statistics and outliers from topic readings."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs import device_stats_job as job
from simulators import temperature as temperature_cli
from simulators.feed import read_accepted_log
from tests.jobs.oracle import iso
from tests.kafka_clients import consume as consume_records
from tests.simulator_runs import temperature_args

pytestmark = pytest.mark.integration

START_MS = 1_764_369_960_000  # aligned to minutes


def consume(bootstrap: str, topic: str, count: int, timeout: float) -> list[dict]:
    return [json.loads(value) for _, value in consume_records(bootstrap, topic, count, timeout)]


def test_device_stats_job_from_kafka(
    spark: SparkSession, kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    source, stats_topic, outliers_topic = unique_name("temperature"), unique_name("stats"), unique_name("outliers")
    log = tmp_path / "accepted.jsonl"
    # 3 devices, 3 minutes of event time (1 reading per device per second) sent in 3 s, with spikes.
    argv = temperature_args(
        kafka_bootstrap=kafka_bootstrap, address=source, devices=3, rate=180, time_scale=60, count=540, seed=3,
        start_ms=START_MS, spike_fraction=0.02, spike_size=15, accepted_log=log, quiet=True,
    )  # fmt: skip
    assert temperature_cli.main(argv) == 0
    accepted = read_accepted_log(log)
    # Watermark 1 min behind the last reading (~3 min): the first minute is closed, per device.
    first_minute = [r for r in accepted if r.ts < START_MS + 60_000]
    expected = {}
    for d in sorted({r.device_id for r in first_minute}):
        temps = [r.temperature for r in first_minute if r.device_id == d]
        expected[d] = (len(temps), min(temps), max(temps), statistics.fmean(temps), statistics.stdev(temps))

    args = job.parse_args(
        [
            "--kafka-bootstrap",
            kafka_bootstrap,
            "--source-topic",
            source,
            "--stats-topic",
            stats_topic,
            "--outliers-topic",
            outliers_topic,
            "--checkpoint-dir",
            str(tmp_path / "checkpoint"),
            "--trigger-interval",
            "1 second",
        ]
    )
    queries = job.start_queries(spark, args)
    try:
        stats = consume(kafka_bootstrap, stats_topic, len(expected), timeout=180)
        outliers = consume(kafka_bootstrap, outliers_topic, 1, timeout=60)
        assert all(q.exception() is None for q in queries)
    finally:
        for q in queries:
            q.stop()
    got = {s["device_id"]: s for s in stats if s["window_start"] == iso(START_MS)}
    assert set(got) == set(expected)
    for d, (count, lo, hi, mean, sd) in expected.items():
        s = got[d]
        assert (s["count"], s["min"], s["max"], s["window_end"]) == (count, lo, hi, iso(START_MS + 60_000))
        assert s["mean"] == pytest.approx(mean) and s["stddev"] == pytest.approx(sd)
    # Every flagged reading is a real spike: at least 10 degrees above the device's recent mean.
    assert outliers and all(o["temperature"] - o["recent_mean"] > 10 for o in outliers)
