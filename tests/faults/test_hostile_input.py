"""Bad input (issue 7): the hostile corpus through the source connector, the demo job and the bridge.

Each path gets every case of :mod:`tests.faults.hostile_corpus` in one stream, with a good
message before and after every hostile one, and must give each case its documented
treatment while every good message arrives exactly once and nothing stops.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from amqp_kafka_bridge import Bridge, BridgeSettings, Route
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import TopicPartition
from proton import Message
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from jobs import windowed_max as job
from simulators.messages import message_to_json, reading_to_message
from simulators.model import Reading
from tests import amqp_clients
from tests.bridge import clients as bridge_clients
from tests.bridge.helpers import consume as consume_records
from tests.bridge.helpers import create_topic, free_port
from tests.faults.hostile_corpus import Case, RawMessage, build_corpus
from tests.jobs.oracle import expected_windows
from tests.kafka_clients import consume
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

START_MS = 1_764_370_000_000  # aligned to 5 s windows
WATERMARK_MS = 10_000
CORPUS = build_corpus(START_MS + 250, step_ms=1000)
DELIVERED = [c for c in CORPUS if c.broker == "accepted"]  # not refused, nor expired by Artemis
REFUSED = [c for c in CORPUS if c.broker == "refused"]


def good_readings(n: int, start_ms: int = START_MS, step_ms: int = 500) -> list[Reading]:
    """``n`` valid readings from 5 devices, ``step_ms`` apart."""
    return [Reading(f"device-{i % 5}", round(20 + (i * 7 % 11) * 0.5, 2), start_ms + i * step_ms) for i in range(n)]


def good_message(reading: Reading, index: int) -> Message:
    message = reading_to_message(reading)
    message.id = f"good-{index}"
    return message


Run = tuple[list[Message | RawMessage], bool]
"""Messages for one connection, and whether Artemis refuses them (it then closes the connection)."""


def interleave(cases: Sequence[Case], goods: Sequence[Message]) -> list[Run]:
    """Good, case, good, case, ..., good, cut into one run per connection: a case Artemis refuses
    goes alone, so that it takes no good message down with it."""
    assert len(goods) == len(cases) + 1
    runs: list[Run] = [([goods[0]], False)]
    for case, good in zip(cases, goods[1:], strict=True):
        if case.broker == "refused":
            runs += [([case.message], True), ([good], False)]
        else:
            runs[-1][0].extend([case.message, good])
    return runs


def send_to_artemis(url: str, address: str, runs: Sequence[Run]) -> int:
    """Send each run on its own connection; returns how many messages the broker accepted."""
    accepted = 0
    for messages, refused in runs:
        if refused:  # e.g. a subject that is not UTF-8: "Cannot parse String", and the connection is closed
            with pytest.raises(ConnectionError, match="amqp:internal-error"):
                amqp_clients.send(url, address, messages)
            continue
        outcomes = amqp_clients.send(url, address, messages, timeout=60)
        assert outcomes == {"accepted": len(messages), "rejected": 0, "released": 0}
        accepted += len(messages)
    return accepted


def alive(query: StreamingQuery) -> bool:
    """True while ``query`` runs; fails the test at once, with the query's error, if it stopped."""
    if not query.isActive:
        raise AssertionError(f"the query stopped: {query.exception()}")
    return True


def _receiver_pids(log_dir: Path) -> set[int]:
    """The source's ingest processes (multiprocessing children) holding a file under ``log_dir`` open."""
    pids = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if b"spawn_main" not in (fd_dir.parent / "cmdline").read_bytes():
                continue
            if any(str(log_dir) in os.readlink(fd) for fd in fd_dir.iterdir()):
                pids.add(int(fd_dir.parent.name))
        except OSError:
            continue
    return pids


# --- 1. the source connector ---------------------------------------------------------------
def test_source_turns_every_hostile_message_into_one_row_and_keeps_going(
    spark: SparkSession, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address = unique_name("hostile-src")
    table = address.replace("-", "_")
    goods = [good_message(r, i) for i, r in enumerate(good_readings(len(CORPUS) + 1))]
    log_dir = tmp_path / "log"
    stream = (
        spark.readStream.format("amqp").option("url", amqp_url).option("address", address).option("logDir", str(log_dir)).load()
    )
    query = stream.writeStream.format("memory").queryName(table).option("checkpointLocation", str(tmp_path / "ckpt")).start()
    try:
        (receiver,) = wait_for(lambda: _receiver_pids(log_dir), 60, "the receiver process (it holds the log open)")
        assert send_to_artemis(amqp_url, address, interleave(CORPUS, goods)) == len(goods) + len(CORPUS) - len(REFUSED)
        sent = len(goods) + len(DELIVERED)  # what Artemis delivers
        wait_for(lambda: alive(query) and spark.sql(f"SELECT count(*) FROM {table}").collect()[0][0] >= sent, 120, f"{sent} rows")
        query.processAllAvailable()
        rows = spark.sql(f"SELECT * FROM {table}").collect()
        assert query.isActive and query.exception() is None
        assert _receiver_pids(log_dir) == {receiver}  # the same ingest process: nothing crashed it
    finally:
        query.stop()
    by_id = Counter(r.message_id for r in rows)
    assert len(rows) == sent and set(by_id.values()) == {1}  # exactly once each
    assert set(by_id) == {m.id for m in goods} | {c.message_id for c in DELIVERED}
    row_of = {r.message_id: r for r in rows}
    for message in goods:
        assert bytes(row_of[message.id].body) == bytes(message.body)
    for case in DELIVERED:
        row = row_of[case.message_id]
        body = None if row.body is None else bytes(row.body)
        assert body == case.source_body, case.name
        assert (row.address, row.partition) == (address, 0), case.name
        for column, value in case.source_columns.items():
            assert row[column] == value, (case.name, column)
    assert sorted(r.offset for r in rows) == list(range(sent))  # every one logged once
    assert amqp_clients.receive(amqp_url, address, 1, timeout=1.5) == []  # and accepted at the broker


# --- 2. the demo job --------------------------------------------------------------------------
def test_job_counts_hostile_readings_as_malformed_and_windows_only_the_good_ones(
    spark: SparkSession, amqp_url: str, kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    source, sink, topic = unique_name("hostile-temp"), unique_name("hostile-max"), unique_name("hostile-max")
    readings = good_readings(len(CORPUS) + 1)
    closer = Reading("device-0", 20.0, readings[-1].ts + 30_000)  # moves the watermark past every window above
    goods = [good_message(r, i) for i, r in enumerate(readings)]
    valid = readings + [c.reading for c in CORPUS if c.job == "reading"] + [closer]
    assert all(c.reading is not None for c in CORPUS if c.job == "reading")
    expected = expected_windows(valid, 5000, closed_before_ms=closer.ts - WATERMARK_MS)  # type: ignore[arg-type]
    args = job.parse_args(
        ["--amqp-url", amqp_url, "--source-address", source, "--sink-address", sink, "--kafka-bootstrap", kafka_bootstrap,
         "--kafka-topic", topic, "--checkpoint-dir", str(tmp_path / "checkpoint"), "--log-dir", str(tmp_path / "amqp-log"),
         "--trigger-interval", "1 second"]
    )  # fmt: skip
    query = job.start_single_query(spark, args)

    def observed() -> list[dict[str, int]]:
        return [p["observedMetrics"]["readings"] for p in query.recentProgress if "readings" in p.get("observedMetrics", {})]

    try:
        runs = [*interleave(CORPUS, goods), ([good_message(closer, 10_000)], False)]
        assert send_to_artemis(amqp_url, source, runs) == len(goods) + len(CORPUS) - len(REFUSED) + 1
        delivered = len(goods) + len(DELIVERED) + 1  # Artemis expires some: the job never sees them
        messages = amqp_clients.receive(amqp_url, sink, len(expected), timeout=180)
        records = consume(kafka_bootstrap, topic, len(expected), timeout=60)
        wait_for(
            lambda: alive(query) and sum(o["messages"] for o in observed()) >= delivered,
            60,
            "every message in the observed metrics",
        )
        assert query.isActive and query.exception() is None
        late = amqp_clients.receive(amqp_url, sink, 1, timeout=2)  # no window beyond the expected ones
    finally:
        query.stop()
    assert sorted((message_to_json(m) for m in messages), key=lambda r: r["window_start"]) == expected
    assert sorted((json.loads(v) for _, v in records), key=lambda r: r["window_start"]) == expected
    assert late == []
    assert sum(o["messages"] for o in observed()) == delivered
    assert sum(o["malformed"] for o in observed()) == sum(c.job == "malformed" for c in CORPUS)


# --- 3. the bridge ----------------------------------------------------------------------------
@pytest.fixture
def bridge_factory(kafka_bootstrap: str) -> Iterator[Callable[..., Bridge]]:
    """``bridge_factory(**settings)`` -> a started in-process bridge (server mode unless told), stopped after the test."""
    running: list[Bridge] = []

    def start(**overrides: Any) -> Bridge:
        values: dict[str, Any] = {"amqp_port": free_port(), "http_port": free_port(), "kafka_bootstrap": kafka_bootstrap}
        bridge = Bridge(BridgeSettings.load(**{"drain_timeout_s": 5.0, **values, **overrides})).start()
        running.append(bridge)
        return bridge

    yield start
    for bridge in running:
        bridge.stop(timeout=15)


def end_offset(bootstrap: str, topic: str) -> int:
    """The high watermark of partition 0: how many records the topic holds."""
    consumer = KafkaConsumer({"bootstrap.servers": bootstrap, "group.id": f"end-{topic}"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()


def scrape(bridge: Bridge) -> str:
    """The bridge's Prometheus ``/metrics`` page, over HTTP."""
    with urllib.request.urlopen(f"http://127.0.0.1:{bridge.settings.http_port}/metrics", timeout=10) as response:
        return response.read().decode()


def rejections(metrics: str, topic: str) -> dict[str, float]:
    """``bridge_rejected_messages_total`` by reason for ``topic``, from the Prometheus text."""
    pattern = re.compile(r'^bridge_rejected_messages_total\{reason="([^"]+)",topic="' + re.escape(topic) + r'"\} (\S+)$', re.M)
    return {reason: float(value) for reason, value in pattern.findall(metrics)}


def released(metrics: str, topic: str) -> float:
    found = re.findall(r'^bridge_released_messages_total\{topic="' + re.escape(topic) + r'"\} (\S+)$', metrics, re.M)
    return float(found[0]) if found else 0.0


def expected_rejections(cases: Sequence[Case], converter: str) -> dict[str, float]:
    reasons = Counter(
        getattr(c, f"bridge_{converter}").split()[-1] for c in cases if getattr(c, f"bridge_{converter}") != "accepted"
    )
    return {reason: float(n) for reason, n in reasons.items()}


@pytest.mark.parametrize("converter", ["json", "raw"])
def test_bridge_rejects_each_hostile_message_with_its_condition_and_counts_it(
    bridge_factory: Callable[..., Bridge], kafka_bootstrap: str, unique_name: Callable[[str], str], converter: str
) -> None:
    topic = unique_name(f"hostile-bridge-{converter}")
    create_topic(kafka_bootstrap, topic)
    bridge = bridge_factory(converter=converter, auto_create_topics=False)
    url = f"amqp://127.0.0.1:{bridge.settings.amqp_port}"
    goods = [good_message(r, i) for i, r in enumerate(good_readings(len(CORPUS) + 1))]
    messages = [goods[0]]
    for case, good in zip(CORPUS, goods[1:], strict=True):
        messages += [case.message, good]
    before_ms = int(time.time() * 1000)
    result = bridge_clients.send(url, topic, messages, timeout=120)
    # an unknown topic (no auto-creation) detaches that link with amqp:not-found and counts no message
    unknown = bridge_clients.send(url, unique_name("no-such-topic"), [good_message(good_readings(1)[0], 99)], timeout=30)
    after_ms = int(time.time() * 1000)
    assert result.link_error is None and result.connection_error is None
    assert unknown.link_error is not None and unknown.link_error.startswith("amqp:not-found")

    assert result.outcomes[0::2] == ["accepted"] * len(goods)
    for case, outcome, condition in zip(CORPUS, result.outcomes[1::2], result.conditions[1::2], strict=True):
        expected = getattr(case, f"bridge_{converter}")
        if expected == "accepted":
            assert outcome == "accepted", (case.name, condition)
        else:
            assert outcome == "rejected" and condition is not None and condition.startswith(expected.split()[1] + ":"), (
                case.name,
                condition,
            )
    metrics = scrape(bridge)
    assert rejections(metrics, topic) == expected_rejections(CORPUS, converter)
    assert released(metrics, topic) == 0.0

    accepted = [c for c in CORPUS if getattr(c, f"bridge_{converter}") == "accepted"]
    records = consume_records(kafka_bootstrap, topic, len(goods) + len(accepted), timeout=30)
    by_id = {dict(r.headers())["amqp.message-id"].decode(): r for r in records}
    assert (
        len(records) == len(goods) + len(accepted) == len(by_id) == end_offset(kafka_bootstrap, topic)
    )  # once each, nothing else
    for message in goods:
        assert by_id[message.id].value() == bytes(message.body)
    for case in accepted:
        record = by_id[case.message_id]
        assert record.value() == case.kafka_value(converter), case.name
        timestamp = record.timestamp()[1]
        if case.kafka_timestamp_ms is not None:
            assert timestamp == case.kafka_timestamp_ms, case.name
        else:  # no creation time, or one Kafka would refuse: Kafka's (the producer's) clock
            assert before_ms - 1000 <= timestamp <= after_ms + 1000, (case.name, timestamp)
    assert bridge.healthy()


def test_forwarder_rejects_hostile_messages_at_the_broker_and_forwards_the_rest(
    bridge_factory: Callable[..., Bridge], amqp_url: str, kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    """Forwarder mode, json converter: what Artemis delivers gets the server mode's treatment; the rejected
    deliveries leave the queue (Artemis dead-letters them), so nothing is redelivered in a loop."""
    address, topic = unique_name("hostile-fwd"), unique_name("hostile-fwd")
    goods = [good_message(r, i) for i, r in enumerate(good_readings(len(CORPUS) + 1))]
    sent = send_to_artemis(amqp_url, address, interleave(CORPUS, goods))
    assert sent == len(goods) + len(CORPUS) - len(REFUSED)
    bridge = bridge_factory(
        mode="forwarder", converter="json", broker_urls=[amqp_url], routes=[Route(address=address, topic=topic)]
    )
    accepted = [c for c in DELIVERED if c.bridge_json == "accepted"]
    records = consume_records(kafka_bootstrap, topic, len(goods) + len(accepted), timeout=60)
    want = expected_rejections(DELIVERED, "json")
    wait_for(lambda: rejections(scrape(bridge), topic) == want, 30, f"rejections {want}")
    metrics = scrape(bridge)
    bridge.stop(timeout=15)
    by_id = Counter(dict(r.headers())["amqp.message-id"].decode() for r in records)
    assert by_id == Counter([m.id for m in goods] + [c.message_id for c in accepted])
    assert len(records) == end_offset(kafka_bootstrap, topic)
    assert released(metrics, topic) == 0.0
    assert amqp_clients.receive(amqp_url, address, 1, timeout=1.5) == []  # every delivery was settled
