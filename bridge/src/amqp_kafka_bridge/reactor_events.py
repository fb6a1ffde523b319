"""The reactor's own IO events, served without building proton's ``Event`` objects.

Every pass of proton's Python reactor goes through events: ``reactor_quiesced`` (time to
``select``), ``selectable_readable``/``writable`` (a socket is ready), ``selectable_updated``
(its interest changed) and the core ``transport`` event (a transport has frames to write).
Each becomes an ``Event`` with wrappers for its link, session, connection and transport,
then walks the application's handler tree and the global handler before reaching the one
method that does something: proton's ``IOHandler``. With one message in flight that is
several such events per message on each side, and their dispatch was most of the reactor's
CPU (~270 us per message, measured by thread with one message in flight).

:class:`ReactorEvents` maps those event types to direct calls doing what the same
``IOHandler`` methods do (or, for a socket that has its own handler, that handler's
``on_readable``), given to :class:`~amqp_kafka_bridge.hot_path.HotCollector` as its table of
served event types. Two round trips through the collector go too: a readable socket is read
as soon as ``select`` returns, and a socket's new interest goes to the selector at once
rather than as a ``selectable_updated`` event. A read takes up to 64 KiB, not only what
the transport's 8 KiB input buffer has room for (``READ_SIZE``, ``push_all``). An event
type is only served when nothing else would see it: the application's handler tree must
neither define its method nor override ``on_unhandled`` (checked once, at install);
otherwise it goes through proton's dispatch as before. Errors, expiry, init and final (which frees a socket) stay with proton.

Pinned internals (``tests/bridge/test_reactor_events.py``): what ``IOHandler``'s methods do
(``on_reactor_quiesced``, ``on_selectable_readable``, ``update``), that they read only
``event.selectable`` from an event, ``Selectable.handler``, ``Transport._selectable``, and
the selector's fields.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cproton_ffi import ffi, lib  # proton's cffi binding: private, pinned (see hot_path)
from proton import ProtonException, Transport
from proton._events import Event  # noqa: PLC2701 - the event types
from proton._handler import Handler  # noqa: PLC2701
from proton._handlers import IOHandler  # noqa: PLC2701
from proton._selectable import Selectable  # noqa: PLC2701

log = logging.getLogger("proton")  # the logger proton's own IO handler reports a failed recv on

RawEvent = Any
"""A ``pn_event_t *`` at the head of the reactor's collector."""
Served = Callable[[RawEvent], bool]
"""Serves one raw event; False leaves it to proton's dispatch."""


READ_SIZE = 65536
"""Bytes read from a socket per ``select``. Proton reads only what its transport's input buffer
has room for (8 KiB: about 60 small transfers); reading more and pushing it in pieces makes
the burst of transfers the hot path serves at once, and so the Kafka produce request their
records go in, up to eight times as large, with one ``select`` for all of it."""


def push_all(transport: Transport, data: bytes) -> None:
    """Give ``transport`` all of ``data``, in pieces its input buffer takes (each piece is processed into frames at once).

    Stops early only when the transport takes nothing more: its input side closed, or a
    frame larger than its maximum, which it reports as an error on its own.
    """
    impl, size = transport._impl, len(data)  # noqa: SLF001 - the wrapper's pointer (pinned by the hot path)
    buffer = ffi.from_buffer(data)
    done = 0
    while done < size:
        taken = lib.pn_transport_push(impl, buffer + done, size - done)
        if taken <= 0:
            return
        done += taken


class _SelectableEvent:
    """What ``IOHandler``'s selectable methods read from an event: the selectable."""

    __slots__ = ("context", "selectable")

    def __init__(self, selectable: Any) -> None:
        self.selectable = self.context = selectable


def handles(handler: Any, method: str) -> bool:
    """Whether ``handler`` or a child would act on ``method`` (defines it, or overrides ``on_unhandled``)."""
    if handler is None:
        return False
    if getattr(handler, method, None) is not None:
        return True
    if getattr(type(handler), "on_unhandled", Handler.on_unhandled) is not Handler.on_unhandled:
        return True
    return any(handles(child, method) for child in getattr(handler, "handlers", None) or ())


class ReactorEvents:
    """The reactor's IO events for ``container`` served by direct calls to ``io`` (its global IO handler)."""

    def __init__(self, container: Any, io: IOHandler) -> None:
        self.reactor = container
        self.io = io
        self.served = 0  # events served here (tests read it)
        self._collector = container._collector._impl  # noqa: SLF001 - the raw collector, to see what follows an event
        candidates: dict[Any, Served] = {
            Event.REACTOR_QUIESCED: self._quiesced,
            Event.SELECTABLE_READABLE: self._readable,
            Event.SELECTABLE_WRITABLE: self._writable,
            Event.SELECTABLE_UPDATED: self._updated,
            Event.TRANSPORT: self._transport,
        }
        self.table: dict[int, Served] = {
            etype.number: serve for etype, serve in candidates.items() if not handles(container.handler, etype.method)
        }
        self._read_here = Event.SELECTABLE_READABLE.number in self.table
        self._update_here = Event.SELECTABLE_UPDATED.number in self.table

    def _selectable(self, raw: RawEvent) -> Any:
        return ffi.from_handle(lib.pn_event_context(raw))

    def _quiesced(self, raw: RawEvent) -> bool:
        """Nothing left to do: wait in ``select``, then serve what became ready (``IOHandler.on_reactor_quiesced``).

        Readable sockets are read at once rather than queued as ``selectable_readable``
        events (when that event type is served here at all). Proton's version ends with
        ``yield_``, which only makes the reactor re-read the clock before the next event;
        ``mark`` here does that.
        """
        if lib.pn_collector_more(self._collector):  # events follow: not quiesced after all
            return True
        reactor = self.reactor
        reactor.timer_deadline  # noqa: B018 - the property drops cancelled timers, as proton's handler does
        readable, writable, expired = self.io._selector.select(reactor.timeout)  # noqa: SLF001
        reactor.mark()
        read_here = self._read_here
        for s in readable:
            if not (read_here and self._read(s)):
                s.readable()
        for s in writable:
            s.writable()
        for s in expired:
            s.expired()
        self.served += 1
        return True

    def _readable(self, raw: RawEvent) -> bool:
        return self._read(self._selectable(raw))

    def _read(self, s: Any) -> bool:
        """Serve a readable socket (``IOHandler.on_selectable_readable``); False if it is not one served here."""
        if type(s) is not Selectable:  # the reactor's timer selectable has a readable() of its own
            return False
        handler = s.handler
        if handler is not None:  # a socket of its own (a listener, the wake-up pipe)
            on_readable = getattr(handler, "on_readable", None)
            if on_readable is None:
                return False
            on_readable()
            self.served += 1
            return True
        t = s._transport  # noqa: SLF001
        if not t:
            return True
        capacity = t.capacity()
        if capacity > 0:
            try:
                data = s.recv(max(capacity, READ_SIZE))
            except OSError as exc:
                log.error("Couldn't recv: %r", exc)  # as proton's IO handler reports it
                t.close_tail()
            else:
                if not data:  # end of stream
                    self.io.on_selectable_error(_SelectableEvent(s))
                    self.served += 1
                    return True
                push_all(t, data)
        self._update(t, s)
        self.served += 1
        return True

    def _writable(self, raw: RawEvent) -> bool:
        s = self._selectable(raw)
        if getattr(s, "handler", None) is not None:
            return False
        self.io.on_selectable_writable(_SelectableEvent(s))
        self.served += 1
        return True

    def _updated(self, raw: RawEvent) -> bool:
        s = self._selectable(raw)
        handler = getattr(s, "handler", None)
        if handler is not None and getattr(handler, "on_selectable_updated", None) is not None:
            return False
        self.io._selector.update(s)  # noqa: SLF001 - IOHandler.on_selectable_updated
        self.served += 1
        return True

    def _transport(self, raw: RawEvent) -> bool:
        """A transport has work (``IOHandler.on_transport``): recompute its socket's interest and deadline."""
        transport = Transport.wrap(lib.pn_event_transport(raw))
        s = getattr(transport, "_selectable", None)  # set by whoever gave the transport its socket
        if s and not s.is_terminal:
            self._update(transport, s)
        self.served += 1
        return True

    def _update(self, t: Transport, s: Any) -> None:
        """``IOHandler.update``: the socket's interest and deadline from its transport.

        The selector is told directly when the update event would be served here anyway
        (``selectable_updated`` in the table, no handler of the socket's own); a socket that
        became terminal still goes through proton's final event, which frees it.
        """
        try:
            s.reading = t.capacity() > 0
        except ProtonException:
            if t.closed:
                self._detach(t, s)
        try:
            s.writing = t.pending() > 0
        except ProtonException:
            if t.closed:
                self._detach(t, s)
        s.deadline = t.tick(self.reactor.now)
        if self._update_here and not s.is_terminal and getattr(s, "handler", None) is None:
            self.io._selector.update(s)  # noqa: SLF001
        else:
            s.update()

    @staticmethod
    def _detach(t: Transport, s: Any) -> None:
        s.terminate()
        s._transport = None  # noqa: SLF001
        t._selectable = None  # noqa: SLF001
