"""``--workers N``: the supervisor accepts AMQP connections and hands each to the worker with the fewest open.

Why not ``SO_REUSEPORT`` (every worker binding the port): the kernel then picks a worker by a
hash of the connection's addresses, not by load, and connections last (IoT gateways, the
benchmark's four senders), so four connections split 3:1 or 4:0 about as often as 2:2.
Here only the supervisor binds the port. Each accepted socket goes to one worker before a
byte is read (TLS and SASL still happen in the worker's proton transport), over a Unix
``SOCK_SEQPACKET`` pair per worker, the descriptor as ``SCM_RIGHTS`` (:func:`socket.send_fds`).
One record per message:

- supervisor -> worker: ``C`` carrying one descriptor, a connection to serve;
- worker -> supervisor: ``R`` once its reactor reads the channel (it is up), and one ``E``
  per handed-off connection that ended.

A worker's count is what it was handed minus what it reported ended. End of file on its
channel means it is gone (crashed, or draining: it closes its end to take no more); it gets
nothing until a new process says ``R``, and its count starts again at 0 (its connections died
with it). While no worker is up the supervisor does not accept: connections wait in the listen
backlog. A hand-off that fails (the worker died in between, or its channel is full) goes to
the next worker; with none left the connection is closed and a warning logged.

The worker finds its end of the pair in the environment (:data:`HANDOFF_ENV`, a descriptor
number the supervisor passes with ``pass_fds``, as systemd passes ``LISTEN_FDS``).
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
from collections.abc import Callable, Collection, Mapping

log = logging.getLogger("bridge.handoff")

HANDOFF_ENV = "AMQP_KAFKA_BRIDGE_HANDOFF_FD"
CONNECTION, READY, ENDED = b"C", b"R", b"E"


def bind(host: str, port: int) -> socket.socket:
    """The AMQP listening socket, non-blocking (IPv6 when ``host`` has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def least_loaded(open_counts: Mapping[int, int], up: Collection[int]) -> int | None:
    """The worker to hand the next connection to: the fewest open among those ``up``, ties to the lowest index.

    None when no worker is up.
    """
    return min(up, key=lambda index: (open_counts.get(index, 0), index), default=None)


class Dispatcher:
    """Supervisor side: the listening socket and a channel per worker, served by :meth:`poll` (one thread)."""

    def __init__(self, host: str, port: int) -> None:
        self.listener = bind(host, port)
        self.selector = selectors.DefaultSelector()
        self.channels: dict[int, socket.socket] = {}
        self.open: dict[int, int] = {}  # handed out minus reported ended, per worker index
        self.up: set[int] = set()
        self._accepting = False

    def channel(self, index: int) -> socket.socket:
        """A fresh channel for worker ``index``, about to be (re)started; its count restarts at 0.

        Returns the worker's end: pass its descriptor to the process, then close it here.
        """
        self._drop(index)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        self.channels[index] = ours
        self.open[index] = 0
        self.selector.register(ours, selectors.EVENT_READ, index)
        return theirs

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for connections and worker reports, and serve them."""
        self._listen(bool(self.up))
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                self._accept()
            else:
                self._read(key.data, key.fileobj)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop accepting (refuse new connections) and close every channel."""
        self._listen(False)
        self.listener.close()
        for index in list(self.channels):
            self._drop(index)
        self.selector.close()

    def _listen(self, on: bool) -> None:
        if on != self._accepting:
            if on:
                self.selector.register(self.listener, selectors.EVENT_READ, None)
            else:
                self.selector.unregister(self.listener)
            self._accepting = on

    def _accept(self) -> None:
        for _ in range(64):  # a burst of connections, without starving the workers' reports
            try:
                conn, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: the connection waits in the backlog
                log.warning("accept failed", extra={"error": str(exc)})
                return
            with conn:  # the worker has its own descriptor once it is sent
                self._hand_off(conn, peer)

    def _hand_off(self, conn: socket.socket, peer: object) -> None:
        tried: set[int] = set()
        while (index := least_loaded(self.open, self.up - tried)) is not None:
            try:
                socket.send_fds(self.channels[index], [CONNECTION], [conn.fileno()])
            except OSError as exc:
                tried.add(index)
                if not isinstance(exc, BlockingIOError):  # the worker is gone; its end of file follows
                    self.up.discard(index)
                continue
            self.open[index] += 1
            log.debug("connection handed off", extra={"worker": index, "open": dict(self.open)})
            return
        log.warning("no worker could take a connection; closed", extra={"peer": str(peer)})

    def _read(self, index: int, channel: socket.socket) -> None:
        try:
            data = channel.recv(256)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            log.debug("worker channel closed", extra={"worker": index})
            self._drop(index)
            return
        if READY in data:
            self.up.add(index)
        self.open[index] = max(0, self.open[index] - data.count(ENDED))

    def _drop(self, index: int) -> None:
        self.up.discard(index)
        self.open[index] = 0
        channel = self.channels.pop(index, None)
        if channel is not None:
            self.selector.unregister(channel)
            channel.close()


class HandedSocket(socket.socket):
    """A connection the supervisor handed over. Closing it reports its end, once: proton's IO
    handler closes a connection's socket at ``selectable_final``, however the connection ended
    (closed, failed, a vanished peer), so the report needs no handler on the socket's selectable."""

    def __init__(self, fd: int, report: Callable[[], None]) -> None:
        super().__init__(fileno=fd)
        self._report: Callable[[], None] | None = report

    def close(self) -> None:
        super().close()
        report, self._report = self._report, None
        if report is not None:
            report()


class WorkerChannel:
    """Worker side: connections from the supervisor, and word back when one of them ends (reactor thread)."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)
        self._owed = b""  # reports the channel had no room for, sent with the next one

    def receive(self) -> list[socket.socket] | None:
        """The connections waiting (possibly none); None once the supervisor is gone (end of file)."""
        received: list[socket.socket] = []
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, 16, 4)
            except (BlockingIOError, InterruptedError):
                return received
            except OSError:
                data, fds = b"", []
            received += [HandedSocket(fd, self.ended) for fd in fds]
            if not data:
                for sock in received:
                    sock.close()
                return None

    def ready(self) -> None:
        self._report(READY)

    def ended(self) -> None:
        """One handed-off connection ended (its socket closed: :class:`HandedSocket`)."""
        self._report(ENDED)

    def _report(self, message: bytes) -> None:
        message, self._owed = self._owed + message, b""
        try:
            self.sock.send(message)
        except BlockingIOError:
            self._owed = message
        except OSError:
            pass  # the channel is closed (draining) or the supervisor is gone: nobody counts any more


def worker_channel() -> WorkerChannel | None:
    """This process's channel from the supervisor (:data:`HANDOFF_ENV`), or None when it listens itself."""
    fd = os.environ.get(HANDOFF_ENV)
    return WorkerChannel(int(fd)) if fd else None
