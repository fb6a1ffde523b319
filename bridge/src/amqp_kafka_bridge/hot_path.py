"""The per-delivery loop below proton's Python event dispatch.

python-qpid-proton turns every protocol event into Python objects before any handler sees
it: an ``Event``, wrappers for its delivery, link, session, connection and transport, and a
walk down the handler chain and the container's global handler. Profiled on the bridge,
that machinery was about 60 % of the reactor thread, paid for every message (the transfer
in, the disposition back). The bridge's own links do not need it: their hot events are
served here from proton-c's objects through proton's cffi module, one C call per step.

:class:`HotCollector` replaces the container's event collector. Its ``peek`` takes the next
raw event and, when it is a delivery event (or, for a link the bridge sends on, a flow
event) of a link registered in its :class:`HotRoutes`, hands the raw ``pn_delivery_t`` /
``pn_link_t`` to that link's ``on_raw_delivery`` / ``on_raw_flow`` and pops it; every other
event (opens, closes, errors, timers, injected events, deliveries on links the bridge does
not bridge) goes on to proton's usual dispatch unchanged.

With the native lane (``producer_lane``), the delivery events of receiving links are served
one step lower still: ``peek`` first lets the lane's ``serve`` read the transfers at the head
of the collector in C, and takes over at the first other event.

After a batch of Kafka reports or records, :func:`write_out` writes the connections'
pending frames to their sockets at once, instead of on the reactor's next pass through
``select`` and its Python dispatch (measured: ~100 us of the one-in-flight latency).

Pinned internals (``tests/bridge/test_hot_path.py`` fails loudly if they change): the
``cproton_ffi`` module python-qpid-proton builds, the reactor's ``_collector`` attribute
(read by ``Reactor.process`` through ``peek``/``pop``), the wrappers' ``_impl`` pointer,
``Event.wrap``, the transport's ``_selectable`` and ``IOHandler.update``. python-qpid-proton's
version is pinned in ``requirements.txt``.

Raw pointers are used only on the reactor thread. A delivery a link keeps past the event
that brought it (until Kafka acknowledges) is held with ``pn_incref`` and let go with
``pn_decref``, as proton's own wrappers do, so it stays valid even if its link is freed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from cproton_ffi import ffi, lib  # proton's cffi binding: private, pinned (see the module docstring)
from proton import Condition, Delivery, Link, Transport
from proton._events import Collector, Event  # noqa: PLC2701 - the collector is what the reactor loop reads
from proton._handlers import IOHandler  # noqa: PLC2701 - recomputes a socket's select interest after write_out

log = logging.getLogger("bridge.hot_path")

RawDelivery = Any
"""A ``pn_delivery_t *`` (cffi pointer): valid on the reactor thread while referenced."""
RawLink = Any
"""A ``pn_link_t *`` (cffi pointer); equal and hashable by address, so usable as a dict key."""

NULL = ffi.NULL
PN_DELIVERY = lib.PN_DELIVERY
PN_LINK_FLOW = lib.PN_LINK_FLOW
ACCEPTED, REJECTED, RELEASED, MODIFIED = lib.PN_ACCEPTED, lib.PN_REJECTED, lib.PN_RELEASED, lib.PN_MODIFIED

# The C calls the links make per delivery, as module names (one attribute look-up fewer each).
delivery_link = lib.pn_delivery_link
delivery_pending = lib.pn_delivery_pending
delivery_partial = lib.pn_delivery_partial
delivery_aborted = lib.pn_delivery_aborted
delivery_readable = lib.pn_delivery_readable
delivery_remotely_settled = lib.pn_delivery_settled
delivery_updated = lib.pn_delivery_updated
delivery_remote_state = lib.pn_delivery_remote_state
delivery_update = lib.pn_delivery_update
delivery_settle = lib.pn_delivery_settle
link_advance = lib.pn_link_advance
link_credit = lib.pn_link_credit
link_flow = lib.pn_link_flow
link_send = lib.pn_link_send
incref = lib.pn_incref
decref = lib.pn_decref
_link_recv = lib.pn_link_recv
_new_delivery = lib.pn_delivery
_from_buffer = ffi.from_buffer
_cast = ffi.cast
_unpack = ffi.unpack
_link_session = lib.pn_link_session
_session_connection = lib.pn_session_connection
_connection_transport = lib.pn_connection_transport
_transport_pending = lib.pn_transport_pending
_transport_peek = lib.pn_transport_peek
_transport_pop = lib.pn_transport_pop


class HotLink(Protocol):
    """A bridged link served by the hot path."""

    def on_raw_delivery(self, delivery: RawDelivery) -> None:
        """A delivery event on this link (a transfer in, or the peer's outcome for one sent)."""

    def on_raw_flow(self) -> None:
        """The peer gave credit (only asked of links the bridge sends on)."""


class HotRoutes(dict[RawLink, HotLink]):
    """``pn_link_t *`` -> the bridged link whose hot events skip proton's dispatch (reactor thread only).

    ``receiving`` holds the receiving links among them whose transfers the native lane's
    ``serve`` reads (those with ``on_transfer_at``; a link's ``inlet`` if it has one), by link address.
    """

    def __init__(self) -> None:
        super().__init__()
        self.receiving: dict[int, HotLink] = {}

    def add(self, link: Link, target: HotLink) -> None:
        raw = raw_link(link)
        self[raw] = target
        if link.is_receiver and hasattr(target, "on_transfer_at"):
            self.receiving[address(raw)] = getattr(target, "inlet", None) or target

    def remove(self, link: Link) -> None:
        raw = raw_link(link)
        self.pop(raw, None)
        self.receiving.pop(address(raw), None)


def address(delivery: RawDelivery) -> int:
    """The address of a proton-c object (a ``pn_delivery_t *``, ``pn_link_t *``...), as the native lane takes it (``producer_lane``)."""
    return int(_cast("uintptr_t", delivery))


def delivery_at(address: int) -> RawDelivery:
    """The ``pn_delivery_t *`` at ``address`` (one the native lane gave back)."""
    return _cast("pn_delivery_t *", address)


def raw_link(link: Link) -> RawLink:
    """The ``pn_link_t *`` behind a proton ``Link``."""
    return link._impl  # noqa: SLF001 - the wrapper's pointer (pinned)


class HotCollector(Collector):
    """The reactor's collector, serving the hot events of routed links itself (see the module docstring).

    A routed link's handler runs inside ``peek``; an exception from it is logged and counted
    with ``on_error`` and the event is consumed, so one link's bug cannot stop the reactor.
    """

    def __init__(
        self, routes: HotRoutes, on_error: Any = None, serve: Callable[[int, dict], tuple[int, int]] | None = None
    ) -> None:
        super().__init__()
        self.routes = routes
        self._serve = serve  # the native lane's reader of receiving links' transfers (producer_lane), or None
        self._address = address(self._impl)
        self.on_error = on_error
        self.on_idle: list[Callable[[], None]] = []  # called when the events run out after hot ones were served
        self.fast: dict[int, Callable[[Any], bool]] = {}  # other event types served by direct calls (reactor_events)
        self.served = 0  # hot events served here (tests read it to see the path was taken)
        self._busy = False

    def peek(self) -> Event | None:
        impl, routes, fast = self._impl, self.routes, self.fast
        read_transfers, receiving, collector = self._serve, routes.receiving, self._address
        while True:
            if read_transfers is not None and receiving:
                try:
                    at, served = read_transfers(collector, receiving)  # the transfers at the head, read and handed over in C
                except Exception:  # noqa: BLE001 - from a link's on_transfer_at; its event is consumed
                    self.served += 1
                    self._busy = True
                    self._failed("on_transfer_at")
                    continue
                if served:
                    self.served += served
                    self._busy = True
                raw = lib.pn_collector_peek(impl) if at else NULL
            else:
                raw = lib.pn_collector_peek(impl)
            if not raw:
                if not self._busy:
                    return None
                self._busy = False  # the end of a burst: per-burst work (metrics) happens once here
                for callback in self.on_idle:
                    try:
                        callback()
                    except Exception:  # noqa: BLE001
                        self._failed("on_idle")
                continue  # the callbacks may have made events
            etype = lib.pn_event_type(raw)
            if etype == PN_DELIVERY:
                delivery = lib.pn_event_delivery(raw)
                target = routes.get(lib.pn_delivery_link(delivery))
                if target is None:
                    return Event.wrap(raw)
                try:
                    target.on_raw_delivery(delivery)
                except Exception:  # noqa: BLE001 - contained like every other event handler of the bridge
                    self._failed("on_raw_delivery")
            elif etype == PN_LINK_FLOW:
                link = lib.pn_event_link(raw)
                target = routes.get(link)
                if target is None or not lib.pn_link_is_sender(link):
                    return Event.wrap(raw)
                try:
                    target.on_raw_flow()
                except Exception:  # noqa: BLE001
                    self._failed("on_raw_flow")
            else:
                serve = fast.get(etype)
                if serve is None or not serve(raw):
                    return Event.wrap(raw)
                lib.pn_collector_pop(impl)  # the reactor's own IO events (reactor_events): no burst of deliveries
                continue
            self.served += 1
            self._busy = True
            lib.pn_collector_pop(impl)

    def _failed(self, where: str) -> None:
        log.exception("hot event handling failed", extra={"event": where})
        if self.on_error is not None:
            self.on_error()


def install(container: Any, routes: HotRoutes, on_error: Any = None, serve: Any = None) -> HotCollector:
    """Give ``container`` (not yet running, no connection made) a :class:`HotCollector` over ``routes``
    (``serve``: the native lane's reader of transfers, ``producer_lane``; None: read here)."""
    if not isinstance(getattr(container, "_collector", None), Collector):
        raise RuntimeError("proton's container has no _collector: the hot path needs the python-qpid-proton it was pinned to")
    collector = HotCollector(routes, on_error, serve)
    container._collector = collector  # noqa: SLF001 - connections made from now on report to it (pinned)
    return collector


class Receiving:
    """Reads whole transfers of one receiving link into ``bytes`` through one reused C buffer."""

    def __init__(self, link: Link) -> None:
        self.link = raw_link(link)
        self._size = 4096
        self._buffer = ffi.new("char[]", self._size)

    def take(self, delivery: RawDelivery) -> bytes | None:
        """The complete transfer of ``delivery`` (then the link moves to the next), or None while it is partial."""
        if delivery_partial(delivery) or not delivery_readable(delivery):
            return None
        pending = delivery_pending(delivery)
        if pending > self._size:
            self._size = max(pending, self._size * 2)
            self._buffer = ffi.new("char[]", self._size)
        got = _link_recv(self.link, self._buffer, pending) if pending else 0
        link_advance(self.link)
        return _unpack(self._buffer, got) if got > 0 else b""


def settle(delivery: RawDelivery, outcome: int, condition: Condition | None = None) -> None:
    """Give ``delivery`` its final ``outcome`` (with ``condition`` for a rejection, ``failed`` for modified) and settle it."""
    if condition is not None or outcome == MODIFIED:
        wrapped = Delivery.wrap(delivery)  # the rare outcomes go through proton's wrapper
        if condition is not None:
            wrapped.local.condition = condition
        if outcome == MODIFIED:
            wrapped.local.failed = True
        wrapped.update(outcome)  # writes the condition into the disposition
    else:
        delivery_update(delivery, outcome)
    delivery_settle(delivery)


class Sending:
    """Sends pre-encoded messages on one sending link: a delivery per message, tagged by a counter."""

    def __init__(self, link: Link) -> None:
        self.link = raw_link(link)
        self._tag = 0

    def send(self, encoded: bytes) -> RawDelivery:
        """Send ``encoded`` (a whole AMQP message) as a new unsettled delivery; returns it (no reference kept)."""
        self._tag += 1
        tag = b"%x" % self._tag
        delivery = _new_delivery(self.link, (len(tag), _from_buffer(tag)))
        link_send(self.link, encoded, len(encoded))
        link_advance(self.link)
        return delivery


_out = bytearray(65536)
_sockets: dict[Any, Any] = {}  # pn_transport_t * -> the reactor's selectable for its socket (write_out's cache)


def _socket_of(transport: Any) -> Any:
    """The selectable proton's reactor serves ``transport``'s socket with, or None (cached: a wrapper costs microseconds).

    A cached entry is only used while it still belongs to that transport, so a transport freed
    and another allocated at the same address cannot be given the old socket.
    """
    s = _sockets.get(transport)
    if s is not None and not s.is_terminal and s._transport is not None and s._transport._impl == transport:  # noqa: SLF001
        return s
    s = getattr(Transport.wrap(transport), "_selectable", None)  # set by proton's reactor while it serves the socket
    if s is not None:
        if len(_sockets) >= 1024:
            _sockets.clear()  # the ones of closed connections go too
        _sockets[transport] = s
    return s


def write_out(links: Iterable[Link]) -> tuple[int, int]:
    """Write the frames pending on the connections of ``links`` to their sockets now.

    Returns the bytes written and the connections left with frames to write (a socket that
    did not take them all, or a connection with no socket yet): those stay with the reactor,
    which writes (or reports) them on its next pass as it would have anyway. TLS happens
    inside the transport, so these are the bytes the reactor would have written.

    This is on the critical path of every acknowledgement, so it works on proton-c's
    pointers (no wrappers for link, session and connection; the socket cached per transport)
    and copies the frames into one reused buffer. The socket's select interest is recomputed
    (``IOHandler.update``) only when it changes: when frames are left, or the reactor was
    waiting to write.
    """
    global _out  # noqa: PLW0603 - one reused buffer (reactor thread, or a thread holding the reactor lock)
    written = left = 0
    seen = set()
    for link in links:
        transport = _connection_transport(_session_connection(_link_session(link._impl)))  # noqa: SLF001
        if transport == NULL or transport in seen:  # one write per connection
            continue
        seen.add(transport)
        pending = _transport_pending(transport)
        if pending <= 0:
            continue
        selectable = _socket_of(transport)
        if selectable is None or selectable.is_terminal:
            left += 1
            continue
        if pending > len(_out):
            _out = bytearray(max(pending, 2 * len(_out)))
        got = _transport_peek(transport, _from_buffer(_out), pending)
        if got < 0:
            left += 1
            continue
        try:
            sent = selectable.send(memoryview(_out)[:got])
        except OSError:
            left += 1
            continue
        _transport_pop(transport, sent)
        written += sent
        if sent < got or selectable.writing:
            IOHandler.update(selectable._transport, selectable, selectable._reactor.now)  # noqa: SLF001 - interest changed
            left += sent < got
    return written, left


def remote_condition(delivery: RawDelivery) -> Condition | None:
    """The condition the peer gave with its outcome (rare path: through proton's wrapper)."""
    return Delivery.wrap(delivery).remote.condition


class Wakeups:
    """Wake-ups from the Kafka threads, served on the reactor thread by a direct call.

    Like proton's ``EventInjector`` a pipe the reactor selects on (add it with
    ``container.selectable(wakeups)``), but a wake-up names a callback, called as soon as the
    pipe is readable, instead of an ``ApplicationEvent`` that walks the handler chain. Any
    thread may call the function :meth:`register` returns; the callback runs on the reactor
    thread (an exception from it is logged and counted with ``on_error``).
    """

    def __init__(self, on_error: Callable[[], None] | None = None) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        self._callbacks: dict[int, Callable[[], None]] = {}
        self.on_error = on_error
        self._transport = None  # proton's IO handler asks every selectable's delegate for one (as EventInjector has)
        self._closed = False

    def register(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Returns the (thread-safe) function that makes the reactor call ``callback``."""
        code = len(self._callbacks) + 1
        if code > 255:
            raise ValueError("at most 255 wake-up callbacks")
        self._callbacks[code] = callback
        byte = bytes((code,))

        def wake() -> None:
            if self._closed:
                return
            try:
                os.write(self._write, byte)
            except OSError:  # closed while waking: the reactor has ended, nothing is left to wake
                pass

        return wake

    def fileno(self) -> int:
        return self._read

    def on_selectable_init(self, event: Any) -> None:
        selectable = event.context
        selectable.reading = True
        selectable.update()

    def on_selectable_readable(self, event: Any) -> None:
        self.on_readable()

    def on_readable(self) -> None:
        """The pipe is readable: call each callback woken since the last time, once (``reactor_events`` calls this directly)."""
        try:
            codes = os.read(self._read, 4096)
        except BlockingIOError:
            return
        for code in sorted(set(codes)):
            try:
                self._callbacks[code]()
            except Exception:  # noqa: BLE001 - contained like every other event handler of the bridge
                log.exception("wake-up handling failed", extra={"event": getattr(self._callbacks[code], "__name__", "?")})
                if self.on_error is not None:
                    self.on_error()

    def close(self) -> None:
        """After the reactor ended: wake-ups do nothing from now on; the read end is freed.

        The write end stays open until this object is collected (the wake functions hold it):
        a Kafka thread still closing may call one, and a closed descriptor number can be
        handed to another file, which the wake-up byte would then be written into.
        """
        if not self._closed:
            self._closed = True
            os.close(self._read)

    def __del__(self) -> None:
        try:
            os.close(self._write)
        except (OSError, AttributeError):
            pass
