"""The ingest process against the real Artemis: log-then-accept, back-pressure, de-duplication."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from amqp_message_model import decode_message
from amqp_message_model.connection import ConnectionOptions, parse_endpoints
from proton import Message
from pyspark_amqp import wal
from pyspark_amqp.ingest import IngestProcess, IngestSpec

from tests import amqp_clients
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _spec(amqp_url: str, address: str, folder: Path, **kw: object) -> IngestSpec:
    args: dict = {"credit": 50, "max_buffered_messages": 1_000_000, "at_most_once": False, "segment_bytes": 1 << 20}
    args.update(kw)
    return IngestSpec(
        connection=ConnectionOptions(parse_endpoints(amqp_url)),
        address=address,
        log_folder=folder,
        link_name=f"test-{address}",
        **args,
    )


def test_back_pressure_holds_credit_until_spark_plans_a_batch(
    amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    address = unique_name("bp")
    amqp_clients.send(amqp_url, address, [Message(body=f"{i}") for i in range(400)])
    proc = IngestProcess(_spec(amqp_url, address, tmp_path, credit=10, max_buffered_messages=100))
    proc.start()
    try:
        proc.wait_attached(30)
        wait_for(lambda: proc.durable >= 100, 30, "the first 100 records")
        # Credit is withheld now; the log stops within one credit window of the bound.
        assert not _grows_past(proc, 110)
        proc.set_planned(100)
        wait_for(lambda: proc.durable >= 200, 30, "more records once Spark planned the first 100")
        proc.set_planned(400)
        wait_for(lambda: proc.durable == 400, 30, "all 400")
    finally:
        proc.stop()
    assert [r.payload for r in wal.read_range(tmp_path, 0, 400)][:1]  # readable
    assert amqp_clients.receive(amqp_url, address, 1, timeout=1.0) == []


def _grows_past(proc: IngestProcess, bound: int) -> bool:
    try:
        wait_for(lambda: proc.durable > bound, 1.5, "growth")
        return True
    except AssertionError:
        return False


def test_redelivered_messages_already_in_the_log_are_accepted_not_logged_again(
    amqp_url: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    """As after a crash between the log's fsync and the accept: the broker still has them."""
    address = unique_name("dedup")
    pending = [Message(body=f"reading {i}", properties={"i": i}, durable=True) for i in range(5)]
    fresh = [Message(body=f"new {i}", durable=True) for i in range(3)]
    amqp_clients.send(amqp_url, address, pending + fresh)
    writer = wal.LogWriter(tmp_path).open()
    for m in pending:  # the crashed receiver had logged these, but its accept never left
        writer.append(1, m.encode())
    writer.flush().sync()
    writer.close()

    proc = IngestProcess(_spec(amqp_url, address, tmp_path))
    proc.start()
    try:
        proc.wait_attached(30)
        wait_for(lambda: proc.durable == 8 and proc.status.deduplicated.value == 5, 30, "5 matched, 3 logged")
    finally:
        proc.stop()
    bodies = [decode_message(r.payload).body for r in wal.read_range(tmp_path, 0, 8)]
    assert bodies == [f"reading {i}" for i in range(5)] + [f"new {i}" for i in range(3)]
    assert amqp_clients.receive(amqp_url, address, 1, timeout=1.0) == []  # all accepted at the broker


def test_broker_killed_and_restarted_mid_stream_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """SIGKILL of Artemis (persistent journal) while the receiver is busy; it reconnects and goes on."""
    from dataclasses import replace

    from services import ServiceSettings
    from services.artemis import ArtemisService
    from services.fetch import fetch_artemis

    settings = ServiceSettings.from_env().with_free_ports(tmp_path / "broker")
    broker = ArtemisService(settings, fetch_artemis(settings))
    broker.start()
    try:
        broker.wait_ready(90)
        url = settings.amqp_url
        n = 20_000
        amqp_clients.send(url, "fault", [Message(id=f"m-{i}", body=f"{i}", durable=True) for i in range(n)], timeout=120)
        proc = IngestProcess(_spec(url, "fault", tmp_path / "log", credit=200, max_buffered_messages=10**9))
        proc.start()
        try:
            proc.wait_attached(30)
            wait_for(lambda: proc.durable >= 2000, 60, "the first records")
            broker.kill()
            broker = ArtemisService(replace(settings), fetch_artemis(settings))
            broker.start()
            broker.wait_ready(90)
            wait_for(
                lambda: proc.durable >= n,
                60,
                f"all {n} after the broker came back (at {proc.durable}, deduplicated {proc.status.deduplicated.value}, error {proc.status.error!r})",
            )
            assert not _grows_past(proc, n)
        finally:
            proc.stop()
        ids = [decode_message(r.payload).id for r in wal.read_range(tmp_path / "log", 0, proc.durable)]
        assert len(ids) == n and set(ids) == {f"m-{i}" for i in range(n)}
        assert amqp_clients.receive(url, "fault", 1, timeout=1.0) == []
    finally:
        broker.stop()
