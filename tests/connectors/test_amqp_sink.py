"""The amqp sink against the real Artemis: all accepted, per-row addresses, refusals fail the task."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from proton import Message

from tests import amqp_clients

pytestmark = pytest.mark.integration


def test_batch_write_delivers_every_row_with_its_fields(spark, amqp_url: str, unique_name: Callable[[str], str]) -> None:
    address = unique_name("sink")
    n = 2000
    df = spark.range(n).selectExpr(
        "CAST(to_json(named_struct('n', id)) AS BINARY) AS body",
        "concat('id-', id) AS message_id",
        "'application/json' AS content_type",
        "concat('s', id % 3) AS subject",
        "map('n', CAST(id AS STRING)) AS application_properties",
        "id AS ignored_extra_column",
    )
    df.write.format("amqp").option("url", amqp_url).option("address", address).mode("append").save()
    got = amqp_clients.receive(amqp_url, address, n, timeout=30)
    assert len(got) == n
    by_id = {m.id: m for m in got}
    assert set(by_id) == {f"id-{i}" for i in range(n)}
    m = by_id["id-42"]
    assert (m.body, m.content_type, m.subject, m.properties, m.durable) == (
        b'{"n":42}',
        "application/json",
        "s0",
        {"n": "42"},
        True,
    )


def test_streaming_write_with_per_row_address(spark, amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path) -> None:
    source, even, odd = unique_name("in"), unique_name("even"), unique_name("odd")
    amqp_clients.send(amqp_url, source, [Message(body=f"{i}") for i in range(200)])
    df = (
        spark.readStream.format("amqp").option("url", amqp_url).option("address", source).option("logDir", str(tmp_path / "log")).load()
        .selectExpr("body", f"IF(CAST(CAST(body AS STRING) AS INT) % 2 = 0, '{even}', '{odd}') AS address")
    )  # fmt: skip
    query = df.writeStream.format("amqp").option("url", amqp_url).option("checkpointLocation", str(tmp_path / "ckpt")).start()
    try:
        evens = amqp_clients.receive(amqp_url, even, 100, timeout=60)
        odds = amqp_clients.receive(amqp_url, odd, 100, timeout=60)
    finally:
        query.stop()
    assert sorted(int(m.body) for m in evens) == list(range(0, 200, 2))
    assert sorted(int(m.body) for m in odds) == list(range(1, 200, 2))


def test_unknown_address_fails_the_task_with_the_brokers_condition(
    spark, amqp_url: str, unique_name: Callable[[str], str]
) -> None:
    df = spark.range(3).selectExpr("CAST(id AS STRING) AS body")
    with pytest.raises(Exception, match=r"amqp:not-found"):
        df.write.format("amqp").option("url", amqp_url).option("address", unique_name("noauto.missing")).option(
            "sendTimeout", "10"
        ).mode("append").save()


def test_bad_schema_and_unreachable_broker_give_clear_errors(spark, unique_name: Callable[[str], str]) -> None:
    with pytest.raises(Exception, match="needs a 'body' column"):
        spark.range(1).write.format("amqp").option("url", "amqp://127.0.0.1:1").option("address", "x").mode("append").save()
    with pytest.raises(Exception, match="'body' column must be string or binary, not bigint"):
        spark.range(1).selectExpr("id AS body").write.format("amqp").option("url", "amqp://127.0.0.1:1").option(
            "address", "x"
        ).mode("append").save()
    with pytest.raises(Exception, match=r"cannot reach the broker at amqp://127.0.0.1:1"):
        spark.range(1).selectExpr("'x' AS body").write.format("amqp").option("url", "amqp://127.0.0.1:1").option(
            "address", "x"
        ).option("sendTimeout", "3").mode("append").save()


def test_a_write_rides_out_a_broker_crash(spark, local_services, amqp_url: str, unique_name: Callable[[str], str]) -> None:
    """Artemis SIGKILLed mid-write and restarted: the task reconnects, resends what was unsettled, succeeds."""
    if local_services is None:
        pytest.skip("kills the broker: needs the test session's own services (unset AMQP_URL/KAFKA_BOOTSTRAP)")
    import threading

    from demo.topology import ArtemisManagement
    from tests.waiting import wait_for

    address, n = unique_name("sink-crash"), 30_000
    written = threading.Event()
    crashed: list[int] = []

    def queued() -> int:
        with ArtemisManagement(amqp_url) as mgmt:
            ok, count = mgmt.call(f"queue.{address}", "getMessageCount")
        return int(count) if ok else 0

    def crash_mid_write() -> None:
        # The write runs on the main thread: a Python data source is looked up through the
        # active session, which a py4j call from another thread does not see.
        wait_for(lambda: written.is_set() or queued() >= 5_000, 60, "5,000 messages at the broker")
        if not written.is_set():
            crashed.append(queued())
            local_services.artemis.kill()
            local_services.artemis.start()
            local_services.artemis.wait_ready(90)

    killer = threading.Thread(target=crash_mid_write)
    killer.start()
    try:
        spark.range(n).selectExpr("CAST(id AS STRING) AS body").coalesce(1).write.format("amqp").option("url", amqp_url).option(
            "address", address
        ).mode("append").save()
    finally:
        written.set()
        killer.join(120)
    assert crashed, "the write finished before the crash: raise n"
    got = amqp_clients.receive(amqp_url, address, queued(), timeout=60)
    bodies = [m.body for m in got]
    assert set(bodies) == {str(i) for i in range(n)}  # every row at the broker, duplicates only from resends
    print(f"\nsink under a broker crash at {crashed[0]} queued: {n} rows, {len(bodies) - n} resent duplicates at the broker")
