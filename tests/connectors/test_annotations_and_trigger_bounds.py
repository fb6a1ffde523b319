"""``includeAnnotations`` on what the bridge sends out of Kafka, and ``minMessagesPerTrigger``/``maxTriggerDelay``, against the real services."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from proton import Message

from tests import amqp_clients
from tests.bridge.helpers import produce
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def test_annotations_show_where_the_bridge_took_a_record_from(
    spark,
    start_bridge,
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,  # noqa: F811
) -> None:
    topic = unique_name("annotated")
    produce(kafka_bootstrap, topic, [{"value": f"v{i}".encode(), "key": b"dev-1"} for i in range(5)])
    bridge = start_bridge()
    # The bridge is an AMQP endpoint: the source reads the Kafka topic through it.
    df = (
        spark.read.format("amqp").option("url", bridge.url).option("address", f"{topic}/group.id/spark")
        .option("logDir", str(tmp_path / "log")).option("includeAnnotations", "true")
        .option("maxMessages", "5").option("quietPeriod", "60").load()
    )  # fmt: skip
    assert df.columns[-1] == "message_annotations"
    rows = sorted(
        df.select("body", "message_annotations").collect(), key=lambda r: int(r.message_annotations["x-opt-bridge.offset"])
    )
    assert [bytes(r.body) for r in rows] == [f"v{i}".encode() for i in range(5)]
    for offset, row in enumerate(rows):
        annotations = row.message_annotations
        assert annotations["x-opt-bridge.topic"] == topic
        assert annotations["x-opt-bridge.partition"] == "0"
        assert annotations["x-opt-bridge.offset"] == str(offset)
        assert annotations["x-opt-bridge.key"] == "dev-1"
    # Without the option the schema is the default one.
    plain = (
        spark.read.format("amqp").option("url", bridge.url).option("address", topic).option("logDir", str(tmp_path / "l2")).load()
    )
    assert "message_annotations" not in plain.columns


def _trickle(url: str, address: str, seconds: int, per_second: int, stop: threading.Event) -> None:
    """Publish ``per_second`` messages each second (load, not synchronisation)."""
    sent = 0
    began = time.monotonic()
    for second in range(seconds):
        if stop.is_set():
            return
        amqp_clients.send(url, address, [Message(id=f"t-{sent + i}", body=b"r", durable=True) for i in range(per_second)])
        sent += per_second
        stop.wait(max(0.0, began + second + 1 - time.monotonic()))


def test_min_messages_per_trigger_waits_for_500_or_3_seconds(
    spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address = unique_name("minrows")
    burst, seconds, rate = 600, 12, 100
    total = burst + seconds * rate
    table = address.replace("-", "_")
    df = (
        spark.readStream.format("amqp").option("url", amqp_url).option("address", address)
        .option("logDir", str(tmp_path / "log")).option("minMessagesPerTrigger", "500")
        .option("maxTriggerDelay", "3 seconds").load()
    )  # fmt: skip
    query = df.writeStream.format("memory").queryName(table).option("checkpointLocation", str(tmp_path / "ckpt")).start()
    stop = threading.Event()
    try:
        wait_for(lambda: query.lastProgress, 90, "the receiver attached (the first trigger)")
        amqp_clients.send(amqp_url, address, [Message(id=f"b-{i}", body=b"r", durable=True) for i in range(burst)])
        publisher = threading.Thread(target=_trickle, args=(amqp_url, address, seconds, rate, stop))
        publisher.start()
        wait_for(lambda: spark.sql(f"SELECT count(*) FROM {table}").collect()[0][0] >= total, 120, f"all {total} rows")
        publisher.join(30)
        progress = [p for p in query.recentProgress if p["numInputRows"] > 0]
        rows = spark.sql(f"SELECT count(DISTINCT message_id) AS n, count(*) AS c FROM {table}").collect()[0]
    finally:
        stop.set()
        query.stop()
    assert (rows.n, rows.c) == (total, total)
    started = [dt.datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")) for p in progress]
    sizes = [p["numInputRows"] for p in progress]
    for i in range(1, len(progress)):
        gap = (started[i] - started[i - 1]).total_seconds()
        assert sizes[i] >= 500 or gap >= 2.5, f"batch {i}: {sizes[i]} rows only {gap:.1f}s after the previous one ({sizes})"
    assert any(s >= 500 for s in sizes), sizes  # the burst went as soon as 500 were there
    assert any(s < 500 for s in sizes[1:]), sizes  # the trickle went out on the delay
    assert len(sizes) <= total // 250 + 2, sizes  # a few large batches, not hundreds of tiny ones
