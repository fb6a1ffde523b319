"""The pipeline on whichever broker ``BROKER`` chose: source, sink, forwarder, simulator, windowed max.

``make test`` runs this module on Artemis with the rest of the suite; ``make test-brokers``
runs it again on ActiveMQ Classic and on RabbitMQ. Every count is asserted exactly, as for Artemis.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from amqp_kafka_bridge import Route
from proton import Message

from jobs import windowed_max as job
from simulators import temperature as temperature_cli
from simulators.feed import read_accepted_log
from simulators.messages import message_to_json
from tests import amqp_clients
from tests.bridge.helpers import consume
from tests.jobs.oracle import expected_windows
from tests.kafka_clients import consume as consume_records
from tests.simulator_runs import temperature_args
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _messages(n: int, start: int = 0) -> list[Message]:
    return [
        Message(id=f"m-{i}", body=json.dumps({"i": i}).encode(), properties={"device_id": f"device-{i % 5}"}, durable=True)
        for i in range(start, start + n)
    ]


class _Collector:
    """A ``foreachBatch`` sink keyed by batch id, so a replayed batch replaces itself instead of counting twice."""

    def __init__(self) -> None:
        self.batches: dict[int, list[str]] = {}
        self.lock = threading.Lock()

    def __call__(self, batch, batch_id: int) -> None:
        ids = [r.message_id for r in batch.select("message_id").collect()]
        with self.lock:
            self.batches[batch_id] = ids

    def ids(self) -> list[str]:
        with self.lock:
            return [i for ids in self.batches.values() for i in ids]


def _start(spark, url: str, address: str, tmp_path: Path, collector: _Collector, **options: str):
    reader = spark.readStream.format("amqp").option("url", url).option("address", address).option("logDir", str(tmp_path / "log"))
    for key, value in options.items():
        reader = reader.option(key, value)
    return (
        reader.load().writeStream.foreachBatch(collector).option("checkpointLocation", str(tmp_path / "ckpt"))
        .trigger(processingTime="500 milliseconds").start()
    )  # fmt: skip


def test_source_exactly_once_across_a_restart_from_checkpoint(spark, amqp_url, unique_name, tmp_path, broker_name) -> None:
    address = unique_name("src")
    assert amqp_clients.send(amqp_url, address, _messages(300))["accepted"] == 300
    collector = _Collector()
    query = _start(spark, amqp_url, address, tmp_path, collector, maxMessagesPerTrigger="100")
    wait_for(lambda: len(collector.ids()) >= 100, 120, f"the first batches on {broker_name}")
    query.stop()
    assert amqp_clients.send(amqp_url, address, _messages(300, start=300))["accepted"] == 300
    query = _start(spark, amqp_url, address, tmp_path, collector, maxMessagesPerTrigger="100")
    try:
        wait_for(lambda: len(collector.ids()) >= 600, 120, f"all 600 after the restart on {broker_name}")
        query.processAllAvailable()
    finally:
        query.stop()
    ids = collector.ids()
    assert len(ids) == 600 and set(ids) == {f"m-{i}" for i in range(600)}


def test_source_loses_and_repeats_nothing_when_the_broker_is_killed(
    spark, amqp_url, unique_name, tmp_path, broker_name, durable_queue, own_broker
) -> None:
    address = durable_queue(unique_name("kill"))
    assert amqp_clients.send(amqp_url, address, _messages(400))["accepted"] == 400
    collector = _Collector()
    query = _start(spark, amqp_url, address, tmp_path, collector, maxMessagesPerTrigger="50", credit="20")
    try:
        wait_for(lambda: len(collector.ids()) >= 50, 120, "the first batch")
        own_broker.kill()  # SIGKILL mid-stream: whatever was unsettled is redelivered after the restart
        own_broker.start()
        own_broker.wait_ready(120)
        assert amqp_clients.send(amqp_url, address, _messages(200, start=400), timeout=60)["accepted"] == 200
        wait_for(lambda: len(set(collector.ids())) >= 600, 180, f"all 600 after the SIGKILL on {broker_name}")
        query.processAllAvailable()
    finally:
        query.stop()
    ids = collector.ids()
    assert sorted(ids) == sorted(f"m-{i}" for i in range(600))  # each exactly once


def test_sink_delivers_every_row(spark, amqp_url, unique_name) -> None:
    address = unique_name("sink")
    df = spark.range(200).selectExpr("CAST(id AS STRING) AS body", "CAST(id AS STRING) AS message_id")
    df.write.format("amqp").option("url", amqp_url).option("address", address).mode("append").save()
    got = amqp_clients.receive(amqp_url, address, 200, timeout=60)
    assert sorted(int(bytes(m.body) if isinstance(m.body, bytes | memoryview) else m.body) for m in got) == list(range(200))


def test_forwarder_forwards_every_message_to_kafka(start_bridge, amqp_url, kafka_bootstrap, unique_name) -> None:
    address, topic = unique_name("fwd"), unique_name("fwd-topic")
    start_bridge(mode="forwarder", broker_urls=[amqp_url], key_property="device_id", routes=[Route(address=address, topic=topic)])
    messages = _messages(150)
    assert amqp_clients.send(amqp_url, address, messages)["accepted"] == 150
    records = consume(kafka_bootstrap, topic, 150, timeout=90)
    assert sorted(r.value() for r in records) == sorted(bytes(m.body) for m in messages)
    assert {r.key() for r in records} == {f"device-{d}".encode() for d in range(5)}


def test_simulator_every_accepted_reading_arrives(amqp_url, unique_name, tmp_path) -> None:
    address, log = unique_name("sim"), tmp_path / "accepted.jsonl"
    argv = temperature_args(url=amqp_url, address=address, devices=4, rate=1000, count=500, seed=3, accepted_log=log, quiet=True)
    assert temperature_cli.main(argv) == 0
    accepted = read_accepted_log(log)
    assert len(accepted) == 500
    got = amqp_clients.receive(amqp_url, address, 500, timeout=60)
    assert sorted(message_to_json(m)["ts"] for m in got) == sorted(r.ts for r in accepted)


START_MS = 1_764_370_000_000


def test_windowed_max_job_end_to_end(spark, amqp_url, kafka_bootstrap, unique_name, tmp_path: Path) -> None:
    source, sink, topic = unique_name("temperature"), unique_name("max"), unique_name("max")
    log = tmp_path / "accepted.jsonl"
    argv = temperature_args(
        url=amqp_url, address=source, devices=6, rate=2000, time_scale=10, count=6000, seed=11, start_ms=START_MS,
        accepted_log=log, quiet=True,
    )  # fmt: skip
    assert temperature_cli.main(argv) == 0
    accepted = read_accepted_log(log)
    assert len(accepted) == 6000
    expected = expected_windows(accepted, 5000, closed_before_ms=max(r.ts for r in accepted) - 10_000)
    assert expected
    args = job.parse_args(
        [
            "--amqp-url",
            amqp_url,
            "--source-address",
            source,
            "--sink-address",
            sink,
            "--kafka-bootstrap",
            kafka_bootstrap,
            "--kafka-topic",
            topic,
            "--checkpoint-dir",
            str(tmp_path / "checkpoint"),
            "--log-dir",
            str(tmp_path / "amqp-log"),
            "--trigger-interval",
            "1 second",
        ]  # fmt: skip
    )
    query = job.start_single_query(spark, args)
    try:
        messages = amqp_clients.receive(amqp_url, sink, len(expected), timeout=180)
        records = consume_records(kafka_bootstrap, topic, len(expected), timeout=60)
        assert query.exception() is None
    finally:
        query.stop()
    assert sorted((message_to_json(m) for m in messages), key=lambda r: r["window_start"]) == expected
    assert sorted((json.loads(v) for _, v in records), key=lambda r: r["window_start"]) == expected
