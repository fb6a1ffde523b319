"""The amqp source against the real Artemis and a real local Spark."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from proton import Message

from tests import amqp_clients
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _readings(n: int, devices: int = 5, start: int = 0) -> list[Message]:
    return [
        Message(
            id=f"m-{i}",
            body=json.dumps(
                {"device_id": f"device-{i % devices}", "temperature": 20 + (i % 7) * 0.5, "ts": 1_764_370_000_000 + i}
            ).encode(),
            content_type="application/json",
            subject=f"device-{i % devices}",
            properties={"device_id": f"device-{i % devices}", "i": i},
            durable=True,
        )
        for i in range(start, start + n)
    ]


def _stream(spark, amqp_url: str, address: str, log_dir: Path, **options: str):
    reader = spark.readStream.format("amqp").option("url", amqp_url).option("address", address).option("logDir", str(log_dir))
    for key, value in options.items():
        reader = reader.option(key, value)
    return reader.load()


def _memory_query(df, name: str, checkpoint: Path, **trigger: object):
    writer = df.writeStream.format("memory").queryName(name).option("checkpointLocation", str(checkpoint))
    if trigger:
        writer = writer.trigger(**trigger)
    return writer.start()


def _count(spark, table: str) -> int:
    return spark.sql(f"SELECT count(*) FROM {table}").collect()[0][0]


def test_every_message_arrives_exactly_once_with_its_fields(
    spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address = unique_name("src")
    n = 3000
    assert amqp_clients.send(amqp_url, address, _readings(n))["accepted"] == n
    table = address.replace("-", "_")
    query = _memory_query(_stream(spark, amqp_url, address, tmp_path / "log"), table, tmp_path / "ckpt")
    try:
        wait_for(lambda: _count(spark, table) >= n, 90, f"{n} rows")
        rows = spark.sql(f"SELECT * FROM {table}").collect()
    finally:
        query.stop()
    assert len(rows) == n
    assert sorted(r.message_id for r in rows) == sorted(f"m-{i}" for i in range(n))
    assert sorted(r.offset for r in rows) == list(range(n))  # log offsets: dense and unique
    first = next(r for r in rows if r.message_id == "m-7")
    assert json.loads(first.body) == {"device_id": "device-2", "temperature": 20.0, "ts": 1_764_370_000_007}
    assert (first.address, first.partition, first.subject, first.content_type) == (address, 0, "device-2", "application/json")
    assert first.application_properties == {"device_id": "device-2", "i": "7"}
    assert first.durable is True and first.delivery_count == 0 and first.received_time is not None
    # Everything was accepted at the broker: nothing is left on the address.
    assert amqp_clients.receive(amqp_url, address, 1, timeout=1.5) == []


def test_restart_from_checkpoint_neither_loses_nor_repeats(
    spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address = unique_name("restart")
    table = address.replace("-", "_")
    amqp_clients.send(amqp_url, address, _readings(500))
    df = _stream(spark, amqp_url, address, tmp_path / "log", maxMessagesPerTrigger="100")
    counts = df.selectExpr("application_properties['device_id'] AS device").groupBy("device").count()
    out = tmp_path / "out.json"

    def publish(batch, batch_id: int) -> None:  # complete mode: each batch carries the whole aggregate
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({r.device: r["count"] for r in batch.collect()}))
        os.replace(tmp, out)  # atomic: the test reads it concurrently

    def start():
        return (
            counts.writeStream.outputMode("complete").foreachBatch(publish)
            .option("checkpointLocation", str(tmp_path / "ckpt")).queryName(table).start()
        )  # fmt: skip

    def total() -> int:
        return sum(json.loads(out.read_text()).values()) if out.exists() else 0

    query = start()
    wait_for(lambda: total() >= 200, 90, "the first batches")
    query.stop()
    amqp_clients.send(amqp_url, address, _readings(500, start=500))
    query = start()
    try:
        wait_for(lambda: total() >= 1000, 90, "all 1000 after the restart")
        query.processAllAvailable()
    finally:
        query.stop()
    assert json.loads(out.read_text()) == {f"device-{d}": 200 for d in range(5)}
    batches = [p["numInputRows"] for p in query.recentProgress]
    assert max(batches) <= 100  # maxMessagesPerTrigger held


def test_every_amqp_body_type_converts(spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path) -> None:
    address = unique_name("bodies")
    seq = Message(body=[1, 2])
    seq.inferred = True
    bodies = [
        Message(body=b"\x00raw"),
        Message(body="text"),
        Message(body=7),
        Message(body=True),
        Message(body={"k": [1.5]}),
        Message(body=None),
        seq,
    ]
    amqp_clients.send(amqp_url, address, bodies)
    table = address.replace("-", "_")
    query = _memory_query(_stream(spark, amqp_url, address, tmp_path / "log"), table, tmp_path / "ckpt")
    try:
        wait_for(lambda: _count(spark, table) >= len(bodies), 60, "every body")
        got = [r.body for r in spark.sql(f"SELECT body FROM {table} ORDER BY offset").collect()]
    finally:
        query.stop()
    assert [None if b is None else bytes(b) for b in got] == [b"\x00raw", b"text", b"7", b"true", b'{"k":[1.5]}', None, b"[1,2]"]


def test_two_receivers_share_an_address_without_duplicates(
    spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address = unique_name("two")
    n = 2000
    table = address.replace("-", "_")
    query = _memory_query(
        _stream(spark, amqp_url, address, tmp_path / "log", receivers="2", credit="100"), table, tmp_path / "ckpt"
    )
    try:
        wait_for(lambda: query.lastProgress, 60, "both receivers attached (the first trigger)")
        amqp_clients.send(amqp_url, address, _readings(n))
        wait_for(lambda: _count(spark, table) >= n, 90, f"{n} rows from two receivers")
        rows = spark.sql(f"SELECT message_id, partition FROM {table}").collect()
    finally:
        query.stop()
    assert sorted(r.message_id for r in rows) == sorted(f"m-{i}" for i in range(n))
    assert {r.partition for r in rows} == {0, 1}


def test_available_now_reads_the_backlog_and_stops(
    spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address = unique_name("now")
    amqp_clients.send(amqp_url, address, _readings(300))
    table = address.replace("-", "_")
    query = _memory_query(
        _stream(spark, amqp_url, address, tmp_path / "log", maxMessagesPerTrigger="120"),
        table,
        tmp_path / "ckpt",
        availableNow=True,
    )
    assert query.awaitTermination(120), "an availableNow query must end by itself"
    assert _count(spark, table) == 300
    assert [p["numInputRows"] for p in query.recentProgress if p["numInputRows"]] == [120, 120, 60]


def test_wrong_password_fails_the_query_with_a_clear_error(
    spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    df = _stream(
        spark, amqp_url, unique_name("auth"), tmp_path / "log", user="admin", password="not-the-s3cret", startTimeout="5"
    )
    query = (
        df.writeStream.format("memory")
        .queryName(unique_name("auth").replace("-", "_"))
        .option("checkpointLocation", str(tmp_path / "c"))
        .start()
    )
    with pytest.raises(Exception, match="could not attach a receiver.*(unauthorized|auth|SASL)"):
        query.awaitTermination(60)
    assert "not-the-s3cret" not in str(query.exception())


def test_unknown_option_fails_at_load(spark, amqp_url: str, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="unknown option.*maxoffsetspertrigger.*Valid options: url"):
        _stream(spark, amqp_url, "x", tmp_path / "log", maxOffsetsPerTrigger="5")
    with pytest.raises(Exception, match="option 'logDir' is required"):
        spark.readStream.format("amqp").option("url", amqp_url).option("address", "x").load()


def _pids_holding_files_under(folder: Path) -> set[int]:
    """Receiver processes (multiprocessing children) with a file of ``folder`` open."""
    pids = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if b"spawn_main" not in (fd_dir.parent / "cmdline").read_bytes():
                continue
            for fd in fd_dir.iterdir():
                if str(folder) in os.readlink(fd):
                    pids.add(int(fd_dir.parent.name))
                    break
        except OSError:
            continue
    return pids


def test_a_killed_receiver_process_is_replaced_and_nothing_is_lost(
    spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    import signal

    address = unique_name("respawn")
    table = address.replace("-", "_")
    amqp_clients.send(amqp_url, address, _readings(500))
    query = _memory_query(_stream(spark, amqp_url, address, tmp_path / "log"), table, tmp_path / "ckpt")
    try:
        wait_for(lambda: _count(spark, table) >= 500, 90, "the first 500")
        (receiver,) = wait_for(
            lambda: _pids_holding_files_under(tmp_path / "log"), 10, "the receiver process (it holds the log open)"
        )
        os.kill(receiver, signal.SIGKILL)
        amqp_clients.send(amqp_url, address, _readings(500, start=500))
        wait_for(lambda: _count(spark, table) >= 1000, 90, "the next 500 through a new receiver process")
        ids = [r.message_id for r in spark.sql(f"SELECT message_id FROM {table}").collect()]
        assert receiver not in _pids_holding_files_under(tmp_path / "log")
    finally:
        query.stop()
    assert sorted(ids) == sorted(f"m-{i}" for i in range(1000))
