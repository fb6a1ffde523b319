"""The ``--workers`` hand-off without processes: the choice of worker, and the supervisor's counts over real sockets."""

from __future__ import annotations

import socket
import time

import pytest
from amqp_kafka_bridge.handoff import Dispatcher, WorkerChannel, least_loaded

from tests.bridge.helpers import free_port

pytestmark = pytest.mark.unit


def test_least_loaded_picks_the_fewest_open_among_live_workers_ties_to_the_lowest_index():
    assert least_loaded({0: 2, 1: 1, 2: 1}, {0, 1, 2}) == 1
    assert least_loaded({0: 0, 1: 0}, {0, 1}) == 0
    assert least_loaded({0: 0, 1: 3}, {1}) == 1, "a worker that is down gets nothing, however idle"
    assert least_loaded({0: 5, 1: 0}, {0, 2}) == 2, "a worker up without a count yet has none open"
    assert least_loaded({0: 0}, set()) is None


class _Worker:
    """A worker's end of the channel, as the listener uses it."""

    def __init__(self, dispatcher: Dispatcher, index: int) -> None:
        theirs = dispatcher.channel(index)
        self.channel = WorkerChannel(theirs.detach())
        self.conns: list[socket.socket] = []

    def take(self, dispatcher: Dispatcher, count: int) -> None:
        deadline = time.monotonic() + 5
        while len(self.conns) < count:
            assert time.monotonic() < deadline, f"{len(self.conns)} of {count} connections arrived"
            dispatcher.poll(0.05)
            self.conns += self.channel.receive() or []


def _serve(dispatcher: Dispatcher, until: object, what: str) -> None:
    deadline = time.monotonic() + 5
    while not until():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        dispatcher.poll(0.05)


@pytest.fixture
def dispatcher():
    d = Dispatcher("127.0.0.1", free_port())
    yield d
    d.close()


def test_each_connection_goes_to_the_worker_with_the_fewest_open(dispatcher):
    port = dispatcher.listener.getsockname()[1]
    workers = [_Worker(dispatcher, 0), _Worker(dispatcher, 1)]
    clients = [socket.create_connection(("127.0.0.1", port))]
    dispatcher.poll(0.05)
    assert dispatcher.open == {0: 0, 1: 0}, "no worker said it is up: the connection waits in the backlog"
    for worker in workers:
        worker.channel.ready()
    _serve(dispatcher, lambda: dispatcher.up == {0, 1}, "both workers up")
    clients += [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    workers[0].take(dispatcher, 2)
    workers[1].take(dispatcher, 2)
    assert dispatcher.open == {0: 2, 1: 2}
    handed = workers[0].conns[0]
    assert handed.getsockname() == ("127.0.0.1", port), "the worker holds the accepted TCP socket itself"

    for conn in workers[1].conns:  # worker 1's two connections end: closing a handed socket reports it, once
        conn.close()
        conn.close()
    _serve(dispatcher, lambda: dispatcher.open[1] == 0, "worker 1's ends counted")
    clients += [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    workers[1].take(dispatcher, 4)
    assert dispatcher.open == {0: 2, 1: 2}
    for sock in clients + workers[0].conns + workers[1].conns:
        sock.close()


def test_a_worker_that_is_gone_gets_nothing_and_a_restarted_one_starts_at_zero(dispatcher):
    port = dispatcher.listener.getsockname()[1]
    workers = [_Worker(dispatcher, 0), _Worker(dispatcher, 1)]
    for worker in workers:
        worker.channel.ready()
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    workers[0].take(dispatcher, 1)
    workers[1].take(dispatcher, 1)
    workers[0].channel.sock.close()  # as when its process dies: end of file on the supervisor's side
    _serve(dispatcher, lambda: dispatcher.up == {1}, "worker 0 seen gone")
    assert dispatcher.open[0] == 0
    clients += [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    workers[1].take(dispatcher, 3)

    restarted = _Worker(dispatcher, 0)
    restarted.channel.ready()
    _serve(dispatcher, lambda: dispatcher.up == {0, 1}, "worker 0 back")
    clients += [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    restarted.take(dispatcher, 2)
    assert dispatcher.open == {0: 2, 1: 3}
    for sock in clients + workers[0].conns + workers[1].conns + restarted.conns:
        sock.close()


def test_with_no_worker_left_a_handed_connection_is_closed(dispatcher):
    port = dispatcher.listener.getsockname()[1]
    worker = _Worker(dispatcher, 0)
    worker.channel.ready()
    _serve(dispatcher, lambda: dispatcher.up == {0}, "worker up")
    dispatcher.up.clear()  # as after a failed send: the worker is known gone before its end of file
    dispatcher._listen(True)  # noqa: SLF001 - accept although no worker is up (the race this covers)
    client = socket.create_connection(("127.0.0.1", port))
    client.settimeout(5)
    dispatcher._accept()  # noqa: SLF001
    assert client.recv(1) == b"", "closed by the supervisor"
    client.close()
    worker.channel.sock.close()
