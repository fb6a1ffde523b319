"""``spark.read.format("amqp")``: consume and browse batch reads and selectors, against the real Artemis and Spark."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from proton import Message
from pyspark_amqp.offsets import LogPartition
from pyspark_amqp.wal import segments

from services.settings import PROJECT_ROOT
from tests import amqp_clients
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

DEVICES = 10


def _readings(n: int, start: int = 0) -> list[Message]:
    return [
        Message(
            id=f"m-{i}",
            body=json.dumps({"device_id": f"d{i % DEVICES}", "temperature": 20 + i % 7, "ts": 1_764_370_000_000 + i}).encode(),
            content_type="application/json",
            properties={"device_id": f"d{i % DEVICES}", "i": i},
            durable=True,
        )
        for i in range(start, start + n)
    ]


def _batch(spark, amqp_url: str, address: str, **options: str):
    reader = spark.read.format("amqp").option("url", amqp_url).option("address", address)
    for key, value in options.items():
        reader = reader.option(key, value)
    return reader.load()


def _ids(df) -> list[str]:
    return sorted(r.message_id for r in df.select("message_id").collect())


def test_consume_takes_exactly_what_was_on_the_queue(
    spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address = unique_name("consume")
    n = 1000
    assert amqp_clients.send(amqp_url, address, _readings(n))["accepted"] == n
    df = _batch(spark, amqp_url, address, logDir=str(tmp_path / "log"))
    assert _ids(df) == sorted(f"m-{i}" for i in range(n))
    assert df.count() == n  # a second action on the same DataFrame sees the same rows, without receiving again
    first = df.where("message_id = 'm-7'").collect()[0]
    assert (first.address, first.application_properties["device_id"], json.loads(first.body)["ts"]) == (
        address,
        "d7",
        1_764_370_000_007,
    )
    assert amqp_clients.receive(amqp_url, address, 1, timeout=1.5) == []  # taken off the queue
    # The next read starts after what this one took: an empty queue is an empty DataFrame, not an error.
    assert _batch(spark, amqp_url, address, logDir=str(tmp_path / "log"), quietPeriod="0.5").count() == 0


def test_max_messages_bounds_a_read_and_the_rest_comes_next(
    spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address = unique_name("bounded")
    amqp_clients.send(amqp_url, address, _readings(1000))
    log_dir = str(tmp_path / "log")
    first = _ids(_batch(spark, amqp_url, address, logDir=log_dir, maxMessages="300", credit="100"))
    rest = _ids(_batch(spark, amqp_url, address, logDir=log_dir))
    assert len(first) == 300
    assert sorted(first + rest) == sorted(f"m-{i}" for i in range(1000))


def test_browse_returns_the_messages_and_leaves_them_all(
    spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address = unique_name("browse")
    n = 500
    amqp_clients.send(amqp_url, address, _readings(n))
    browsed = _batch(spark, amqp_url, address, mode="browse")
    assert _ids(browsed) == sorted(f"m-{i}" for i in range(n))
    assert _ids(_batch(spark, amqp_url, address, mode="browse", maxMessages="50")) == sorted(f"m-{i}" for i in range(50))
    # Nothing was removed: a consuming read still finds every message.
    assert _ids(_batch(spark, amqp_url, address, logDir=str(tmp_path / "log"))) == sorted(f"m-{i}" for i in range(n))


def test_a_selector_takes_only_its_messages_in_batch_and_stream(
    spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address = unique_name("selector")
    amqp_clients.send(amqp_url, address, _readings(1000))
    d3 = sorted(f"m-{i}" for i in range(3, 1000, DEVICES))
    assert _ids(_batch(spark, amqp_url, address, mode="browse", selector="device_id = 'd3'")) == d3
    assert _ids(_batch(spark, amqp_url, address, logDir=str(tmp_path / "batch-log"), selector="device_id = 'd3'")) == d3

    d4 = sorted(f"m-{i}" for i in range(4, 1000, DEVICES))
    table = address.replace("-", "_")
    stream = (
        spark.readStream.format("amqp").option("url", amqp_url).option("address", address)
        .option("logDir", str(tmp_path / "stream-log")).option("selector", "device_id = 'd4'").load()
    )  # fmt: skip
    query = stream.writeStream.format("memory").queryName(table).option("checkpointLocation", str(tmp_path / "ckpt")).start()
    try:
        wait_for(lambda: spark.sql(f"SELECT count(*) FROM {table}").collect()[0][0] >= 100, 90, "d4's 100 messages")
        query.processAllAvailable()
        got = sorted(r.message_id for r in spark.sql(f"SELECT message_id FROM {table}").collect())
    finally:
        query.stop()
    assert got == d4
    # The other devices' messages were never taken: 800 remain.
    assert len(_ids(_batch(spark, amqp_url, address, logDir=str(tmp_path / "rest-log")))) == 800


def test_an_invalid_selector_fails_with_the_brokers_condition(
    spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address = unique_name("badsel")
    amqp_clients.send(amqp_url, address, _readings(10))
    with pytest.raises(Exception, match="amqp:invalid-field") as failure:
        _batch(spark, amqp_url, address, logDir=str(tmp_path / "log"), selector="device_id === 'd3").collect()
    assert "device_id === 'd3" in str(failure.value)
    assert len(amqp_clients.receive(amqp_url, address, 10, timeout=10)) == 10  # nothing was taken


def _batch_driver(amqp_url: str, address: str, log_dir: Path, out: Path) -> subprocess.Popen:
    code = (
        "import os, sys; os.environ.setdefault('SPARK_LOCAL_IP', '127.0.0.1'); os.environ['PYSPARK_PYTHON'] = sys.executable\n"
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.master('local[2]').config('spark.ui.enabled', 'false').getOrCreate()\n"
        f"df = spark.read.format('amqp').option('url', {amqp_url!r}).option('address', {address!r})"
        f".option('logDir', {str(log_dir)!r}).option('credit', '50').load()\n"
        "print('count', df.count(), flush=True)\n"
    )
    log = open(out, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, start_new_session=True,
    )  # fmt: skip


def test_a_driver_killed_during_a_consume_read_loses_nothing(
    spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address = unique_name("killread")
    n = 20_000
    assert amqp_clients.send(amqp_url, address, _readings(n), timeout=120)["accepted"] == n
    log_dir = tmp_path / "log"
    folder = LogPartition(address, 0).folder(log_dir)

    def logged_bytes() -> int:
        return sum(path.stat().st_size for _, path in segments(folder)) if folder.exists() else 0

    driver = _batch_driver(amqp_url, address, log_dir, tmp_path / "driver.log")
    try:
        wait_for(
            lambda: logged_bytes() > 200_000, 180, f"the read to be receiving (log: {tmp_path / 'driver.log'})", interval=0.05
        )
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(30)
    assert not (log_dir / "batch-read-consume.json").exists(), "the kill must come while the read is still receiving"
    assert "count" not in (tmp_path / "driver.log").read_text()

    ids = [r.message_id for r in _batch(spark, amqp_url, address, logDir=str(log_dir)).select("message_id").collect()]
    assert len(ids) == n and set(ids) == {f"m-{i}" for i in range(n)}  # all of them, none twice
    assert amqp_clients.receive(amqp_url, address, 1, timeout=1.5) == []
