"""The replicated Artemis pair: the primary is SIGKILLed mid-stream, a client given both URLs fails over and loses nothing."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from amqp_message_model.connection import ConnectionOptions, connect_kwargs, parse_endpoints
from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import ApplicationEvent, Container, EventInjector

from demo.topology import ensure_fanout
from services.artemis_ha import BACKUP_SYNCHRONIZED, ArtemisHaPair, ArtemisNodeSpec, local_pair
from services.fetch import fetch_artemis
from services.settings import ServiceSettings, free_port
from tests import amqp_clients
from tests.faults import netns

N = 500
BEFORE_KILL = 150


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArtemisHaPair]:
    home = fetch_artemis(ServiceSettings.from_env())
    primary, backup = local_pair(tmp_path_factory.mktemp("artemis-ha"), ("127.0.0.21", "127.0.0.22"))
    brokers = ArtemisHaPair(primary, backup, home)
    try:
        brokers.start()
        brokers.wait_ready(timeout=180)
        yield brokers
    finally:
        brokers.stop()


class FailoverReceiver(MessagingHandler):
    """Receives ``first`` messages, pauses until resumed, then the rest; connected with every URL and reconnect on."""

    def __init__(self, url: str, source: str, first: int, total: int) -> None:
        super().__init__(prefetch=0)  # credit by hand: nothing beyond ``first`` arrives before the kill
        self.options = ConnectionOptions(parse_endpoints(url), max_reconnect_delay_s=1.0)
        self.source, self.first, self.total = source, first, total
        self.bodies: list[str] = []
        self.paused = threading.Event()
        self.done = threading.Event()
        self.injector = EventInjector()
        self.connection = None
        self.receiver = None

    def on_start(self, event: object) -> None:
        event.container.selectable(self.injector)  # type: ignore[attr-defined]
        self.connection = event.container.connect(**connect_kwargs(self.options, reconnect=True))  # type: ignore[attr-defined]
        self.receiver = event.container.create_receiver(self.connection, self.source)  # type: ignore[attr-defined]
        self.receiver.flow(self.first)

    def on_message(self, event: object) -> None:
        self.bodies.append(event.message.body)  # type: ignore[attr-defined]
        if len(self.bodies) == self.first:
            self.paused.set()
        if len(set(self.bodies)) >= self.total:
            self.finish()

    def on_resume(self, event: object) -> None:
        self.receiver.flow(self.total)  # type: ignore[union-attr]

    def on_finish(self, event: object) -> None:
        self.finish()

    def finish(self) -> None:
        self.done.set()
        if self.connection is not None:
            self.connection.close()
        self.injector.close()


@pytest.mark.integration
def test_pair_is_configured_for_replication(pair: ArtemisHaPair) -> None:
    assert pair.url == f"{pair.primary.url},{pair.backup.url}"
    assert [e.url for e in parse_endpoints(pair.url)] == list(pair.urls)
    primary_xml = (pair.primary.instance / "etc" / "broker.xml").read_text()
    backup_xml = (pair.backup.instance / "etc" / "broker.xml").read_text()
    assert "<check-for-active-server>true</check-for-active-server>" in primary_xml
    assert "<backup><allow-failback>true</allow-failback></backup>" in backup_xml
    assert f"tcp://{pair.backup.settings.host}:{pair.backup.settings.amqp_port}" in primary_xml
    assert pair.backup.logged(BACKUP_SYNCHRONIZED)


@pytest.mark.integration
def test_primary_killed_client_fails_over_and_receives_everything(pair: ArtemisHaPair) -> None:
    address = f"temperature-{uuid.uuid4().hex[:8]}"
    job, bridge = f"{address}::{address}.job", f"{address}::{address}.bridge"
    ensure_fanout(pair.primary.url, address, [job, bridge])  # the story's MULTICAST fan-out, made as the demo makes it
    sent = [f"reading-{i}" for i in range(N)]
    outcomes = amqp_clients.send(pair.primary.url, address, [Message(body=b, durable=True) for b in sent], timeout=60)
    assert outcomes == {"accepted": N, "rejected": 0, "released": 0}

    receiver = FailoverReceiver(pair.url, job, BEFORE_KILL, N)
    thread = threading.Thread(target=Container(receiver).run, daemon=True)
    thread.start()
    try:
        assert receiver.paused.wait(60), f"only {len(receiver.bodies)} of {BEFORE_KILL} received from the primary"
        pair.kill_primary()
        pair.wait_backup_active(timeout=90)
        receiver.injector.trigger(ApplicationEvent("resume"))
        assert receiver.done.wait(90), f"{len(set(receiver.bodies))} of {N} received after the failover"
    finally:
        receiver.injector.trigger(ApplicationEvent("finish"))
        thread.join(15)
    assert set(receiver.bodies) == set(sent)
    # At-least-once: a message delivered but not yet settled at the kill comes again from the backup.
    duplicates = len(receiver.bodies) - N
    assert 0 <= duplicates <= BEFORE_KILL
    print(f"failover receiver: {N} distinct, {duplicates} redelivered")

    # The other queue of the fan-out was replicated whole: a plain client on the backup alone gets all N.
    received = amqp_clients.receive(pair.backup.url, bridge, N, timeout=60)
    assert sorted(m.body for m in received) == sorted(sent)

    # The primary comes back on its folder, copies the backup's journal and takes over again.
    later = [Message(body=f"later-{i}", durable=True) for i in range(50)]
    assert amqp_clients.send(pair.backup.url, address, later)["accepted"] == 50
    pair.start_primary()
    pair.wait_failed_back(timeout=180)
    assert (pair.primary.instance / "etc" / "broker.xml").read_text().count("services.artemis_ha begin") == 1
    for queue in (job, bridge):
        got = amqp_clients.receive(pair.primary.url, queue, 50, timeout=60)
        assert sorted(m.body for m in got) == sorted(m.body for m in later)


@pytest.mark.integration
def test_primary_cut_off_from_the_network_backup_takes_over(tmp_path: Path) -> None:
    """The primary in a network namespace of its own, the backup outside: pulling the primary's cable is a failover."""
    reason = netns.available()
    if reason:
        pytest.skip(reason)
    home = fetch_artemis(ServiceSettings.from_env())
    address = f"cut-{uuid.uuid4().hex[:8]}"
    with netns.host_link(subnet=150 + os.getpid() % 50) as link:
        primary = ArtemisNodeSpec(link.address, free_port(), tmp_path / "primary", netns=link.name)
        backup = ArtemisNodeSpec(link.local_address, free_port(link.local_address), tmp_path / "backup")
        # The primary checks its network by pinging its side's gateway: cut off, it stops serving.
        brokers = ArtemisHaPair(primary, backup, home, network_check=(link.local_address,))
        try:
            brokers.start()
            brokers.wait_ready(timeout=180)
            messages = [Message(body=f"m-{i}", durable=True) for i in range(N)]
            assert amqp_clients.send(brokers.primary.url, address, messages, timeout=60)["accepted"] == N

            brokers.mark_failover()
            link.cut()
            cut_at = time.monotonic()
            brokers.wait_backup_active(timeout=90)
            # No closed socket tells the backup: it notices by the cluster connection's 5 s TTL.
            print(f"backup active {time.monotonic() - cut_at:.1f} s after the cut")
            received = amqp_clients.receive(brokers.backup.url, address, N, timeout=60)
            assert sorted(m.body for m in received) == sorted(m.body for m in messages)

            # Cable back in: the primary, stopped by its network check, restarts, sees the
            # active backup and takes over again instead of becoming a second active broker.
            assert amqp_clients.send(brokers.backup.url, address, messages[:10])["accepted"] == 10
            brokers.mark_failover()
            link.restore()
            brokers.wait_failed_back(timeout=180)
            got = amqp_clients.receive(brokers.primary.url, address, 10, timeout=60)
            assert sorted(m.body for m in got) == sorted(m.body for m in messages[:10])
        finally:
            brokers.stop(timeout=15)
