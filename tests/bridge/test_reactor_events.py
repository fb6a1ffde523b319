"""The reactor's own IO events served directly (``reactor_events``) and reports settled while it is parked (``reactor_lock``).

Pins that fail loudly when a python-qpid-proton internal these modules copy or call
changes; unit tests of the lock and of the handler check; and a running bridge, against
the real Kafka, seen to take both paths for every message and still settle each one.
"""

from __future__ import annotations

import inspect
import socket
import threading

import pytest
from amqp_kafka_bridge.reactor_events import READ_SIZE, ReactorEvents, handles, push_all
from amqp_kafka_bridge.reactor_lock import ParkingIOHandler, ReactorLock
from proton import Collector, Connection, Endpoint, Message, Transport
from proton import Event as ProtonEvent
from proton._events import Event
from proton._handler import Handler
from proton._handlers import IOHandler, MessagingHandler
from proton._io import IO
from proton._reactor import Container, _Connector
from proton._selectable import Selectable

from tests.bridge.clients import send
from tests.bridge.helpers import consume

FAST = ("on_reactor_quiesced", "on_selectable_readable", "on_selectable_writable", "on_selectable_updated", "on_transport")

# --- pins ----------------------------------------------------------------------------------------


def test_proton_io_handler_is_what_reactor_events_copies():
    quiesced = inspect.getsource(IOHandler.on_reactor_quiesced)
    for step in ("r.quiesced", "r.timer_deadline", "self._selector.select(r.timeout)", "r.mark()", "s.readable()",
                 "s.writable()", "s.expired()", "r.yield_()"):  # fmt: skip
        assert step in quiesced, f"IOHandler.on_reactor_quiesced changed ({step!r} is gone): update ReactorEvents._quiesced"
    assert "self._selector.update(s)" in inspect.getsource(IOHandler.on_selectable_updated)
    readable = inspect.getsource(IOHandler.on_selectable_readable)
    for step in ("t.capacity()", "s.recv(capacity)", "t.push(b)", "self.on_selectable_error(event)", "t.close_tail()",
                 "self.update(t, s, r.now)"):  # fmt: skip
        assert step in readable, f"IOHandler.on_selectable_readable changed ({step!r}): update ReactorEvents._read"
    update = inspect.getsource(IOHandler.update)
    for step in ("selectable.reading = capacity > 0", "selectable.writing = pending > 0", "selectable.terminate()",
                 "selectable.deadline = transport.tick(now)", "selectable.update()"):  # fmt: skip
        assert step in update, f"IOHandler.update changed ({step!r}): update ReactorEvents._update"
    assert "self.push_event(self, Event.SELECTABLE_UPDATED)" in inspect.getsource(Selectable.update)
    assert "self.update(t, s, r.now)" in inspect.getsource(IOHandler.on_transport)
    for method in (IOHandler.on_selectable_readable, IOHandler.on_selectable_writable, IOHandler.on_selectable_error):
        body = inspect.getsource(method)
        used = {word.split(".")[1].split("(")[0] for word in body.split() if word.startswith("event.")}
        assert used <= {"selectable"}, f"{method.__name__} now reads {used} from its event: extend _SelectableEvent"
    assert "result.handler = handler" in inspect.getsource(Container.selectable)
    selector = IO.Selector()
    for name in ("_reading", "_writing", "_selectables", "_deadline", "update_deadline", "update"):
        assert hasattr(selector, name), f"proton's selector lost {name}: ParkingSelector relies on it"
    assert "IO.select(r, w, w, t)" in inspect.getsource(IO.Selector.select), "proton's select changed: see ParkingSelector"


def test_nothing_but_the_io_handler_acts_on_the_served_events():
    for method in FAST:
        assert not handles(_Connector(None), method), f"a reconnecting client's connector now handles {method}"
        assert not handles(MessagingHandler(), method)


# --- units -------------------------------------------------------------------------------------


def test_push_all_gives_a_transport_more_than_its_input_buffer_takes_at_once():
    """What the bridge reads per select (up to 64 KiB) reaches the transport whole, a frame cut at the end included."""
    client, server = Connection(), Connection()
    client_t, server_t = Transport(), Transport(Transport.SERVER)
    client_t.bind(client)
    server_t.bind(server)
    events = Collector()
    server.collect(events)
    client.open()
    session = client.session()
    session.open()
    sender = session.sender("s")
    sender.open()

    def pump() -> None:  # the client's bytes through push_all, the server's straight back
        while client_t.pending() > 0 or server_t.pending() > 0:
            out = client_t.peek(client_t.pending())
            client_t.pop(len(out))
            push_all(server_t, out)
            back = server_t.peek(server_t.pending())
            server_t.pop(len(back))
            client_t.push(back)

    pump()
    server.open()
    receiver = server.link_head(Endpoint.REMOTE_ACTIVE)
    receiver.session.open()
    receiver.open()
    receiver.flow(500)
    pump()
    body = bytes(Message(body=b"y" * 150).encode())
    for i in range(400):  # ~76 KB of frames
        sender.delivery(b"%d" % i)
        sender.send(body)
        sender.advance()
    wire = bytearray()
    while client_t.pending() > 0:  # the client's output comes out 8 KiB at a time too
        chunk = client_t.peek(client_t.pending())
        client_t.pop(len(chunk))
        wire += chunk
    assert len(wire) > READ_SIZE > server_t.capacity()  # more than one read of the bridge, many times the buffer
    push_all(server_t, wire[:READ_SIZE])  # one read: ends inside a frame
    push_all(server_t, wire[READ_SIZE:])  # the next read
    deliveries = 0
    while events.peek():
        deliveries += events.peek().type == ProtonEvent.DELIVERY
        events.pop()
    assert receiver.queued == 400 and deliveries >= 400
    assert not server_t.condition  # no framing error: every byte went in once, in order


def test_handles_sees_methods_in_children_and_an_overridden_on_unhandled():
    class Child(Handler):
        def on_transport(self, event: object) -> None:
            pass

    class CatchAll(Handler):
        def on_unhandled(self, method: str, *args: object) -> None:
            pass

    parent = Handler()
    assert not handles(parent, "on_transport")
    parent.add(Child())
    assert handles(parent, "on_transport") and not handles(parent, "on_selectable_updated")
    assert handles(CatchAll(), "on_selectable_updated")


def test_an_application_handler_keeps_the_events_it_handles():
    class Watches(MessagingHandler):
        def on_transport(self, event: object) -> None:
            pass

    lock = ReactorLock()
    io = ParkingIOHandler(lock)
    served = ReactorEvents(Container(MessagingHandler(), global_handler=io), io).table
    assert set(served) == {getattr(Event, n).number for n in ("REACTOR_QUIESCED", "SELECTABLE_READABLE",
                                                                 "SELECTABLE_WRITABLE", "SELECTABLE_UPDATED", "TRANSPORT")}  # fmt: skip
    kept = ReactorEvents(Container(Watches(), global_handler=io), io).table
    assert Event.TRANSPORT.number not in kept and Event.SELECTABLE_UPDATED.number in kept


def test_the_lock_is_free_only_while_the_reactor_waits_in_select():
    lock = ReactorLock()
    busy, parked_ready, done = threading.Event(), threading.Event(), threading.Event()
    a, b = socket.socketpair()
    got: list[object] = []

    def loop() -> None:
        busy.wait(5)  # "processing events", holding the lock
        parked_ready.set()
        got.append(lock.parked_select([a], [], 5.0))
        done.wait(5)

    reactor = threading.Thread(target=lock.run, args=(loop,))
    reactor.start()
    try:
        did: list[str] = []
        assert not lock.try_serve(lambda: did.append("busy"))  # the reactor holds the lock
        busy.set()
        parked_ready.wait(5)
        served = False
        for _ in range(2000):  # the reactor enters select right after parked_ready: the lock frees then
            served = lock.try_serve(lambda: did.append("parked"))
            if served:
                break
            threading.Event().wait(0.001)
        assert served and did == ["parked"] and lock.served == 1
        b.send(b"x")  # wake the select
    finally:
        busy.set()
        done.set()
        reactor.join(5)
        a.close()
        b.close()
    assert got and got[0][0] == [a]
    assert not lock.try_serve(lambda: did.append("after"))  # the reactor has ended: nothing runs
    assert did == ["parked"]


# --- a running bridge, against the real Kafka ----------------------------------------------------


@pytest.mark.integration
def test_one_message_at_a_time_is_settled_by_the_report_thread_and_io_events_skip_dispatch(
    start_bridge, kafka_bootstrap, unique_name
):
    bridge = start_bridge()
    topic = unique_name("parked")
    served_before, events_before = bridge.core.reactor_lock.served, bridge.reactor_events.served
    outcomes = []
    for i in range(30):  # one in flight: the reactor is parked in select when each report comes back
        outcomes += send(bridge.url, topic, [Message(body=f"p{i}".encode(), inferred=True)]).outcomes
    assert outcomes == ["accepted"] * 30
    assert bridge.core.reactor_lock.served - served_before >= 15  # most reports settled off the reactor thread
    assert bridge.reactor_events.served - events_before >= 30 * 3  # selects, reads and updates without Event objects
    assert [r.value() for r in consume(kafka_bootstrap, topic, 30)] == [f"p{i}".encode() for i in range(30)]
