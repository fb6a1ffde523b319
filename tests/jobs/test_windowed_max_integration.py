"""The demo job end to end on the real services: simulator -> Artemis -> Spark -> AMQP ``max`` and Kafka ``max``.

Every emitted window is checked against a recomputation from the readings the
simulator reports the broker accepted: same max, same device, same count, and
no window missing among those the watermark has closed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs import windowed_max as job
from simulators import temperature as temperature_cli
from simulators.feed import read_accepted_log
from simulators.messages import message_to_json
from tests import amqp_clients
from tests.jobs.oracle import expected_windows
from tests.kafka_clients import consume as _consume_records
from tests.simulator_runs import temperature_args

pytestmark = pytest.mark.integration

START_MS = 1_764_370_000_000  # aligned to 5 s windows
WATERMARK_MS = 10_000


@pytest.mark.parametrize("source_kind", ["amqp", "kafka"])
def test_windowed_max_job_matches_the_accepted_readings(
    source_kind: str, spark: SparkSession, amqp_url: str, kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    """``--source amqp`` reads AMQP with the amqp source; ``--source kafka`` reads the readings' Kafka topic
    (the scale-out path: bridge -> Kafka -> Spark) with Spark's own Kafka source. Same results either way."""
    source, sink, topic = unique_name("temperature"), unique_name("max"), unique_name("max")
    log = tmp_path / "accepted.jsonl"
    # 8000 readings from 10 devices over 40 s of event time (sent in 4 s), 5 % of them 4 s late.
    assert (
        temperature_cli.main(
            temperature_args(
                url=amqp_url,
                address=source,
                kafka_bootstrap=kafka_bootstrap if source_kind == "kafka" else None,
                devices=10,
                rate=2000,
                time_scale=10,
                count=8000,
                seed=5,
                start_ms=START_MS,
                late_fraction=0.05,
                late_by=4,
                accepted_log=log,
                quiet=True,
            )  # fmt: skip
        )
        == 0
    )
    accepted = read_accepted_log(log)
    assert len(accepted) == 8000
    expected = expected_windows(accepted, 5000, closed_before_ms=max(r.ts for r in accepted) - WATERMARK_MS)
    assert len(expected) == 6  # [-5 s, 0) from the first late readings, then [0, 25 s)

    source_args = ["--source-address", source] if source_kind == "amqp" else ["--source", "kafka", "--source-topic", source]
    args = job.parse_args(
        [
            "--amqp-url",
            amqp_url,
            *source_args,
            "--sink-address",
            sink,
            "--kafka-bootstrap",
            kafka_bootstrap,
            "--kafka-topic",
            topic,
            "--checkpoint-dir",
            str(tmp_path / "checkpoint"),
            *(["--log-dir", str(tmp_path / "amqp-log")] if source_kind == "amqp" else []),
            "--trigger-interval",
            "1 second",
        ]
    )
    query = job.start_single_query(spark, args)
    try:
        messages = amqp_clients.receive(amqp_url, sink, len(expected), timeout=180)
        records = _consume_records(kafka_bootstrap, topic, len(expected), timeout=60)
        assert query.exception() is None
    finally:
        query.stop()
    got_amqp = sorted((message_to_json(m) for m in messages), key=lambda r: r["window_start"])
    assert got_amqp == expected
    assert messages[0].content_type == "application/json"
    got_kafka = sorted((json.loads(v) for _, v in records), key=lambda r: r["window_start"])
    assert got_kafka == expected
    assert all(k.decode() == json.loads(v)["window_start"] for k, v in records)
