"""The server-mode listener and its authentication: SASL ANONYMOUS/PLAIN, TLS, a port shared by workers.

Proton's built-in SASL (this build has no Cyrus, ``SASL.extended()`` is False) can only
serve ANONYMOUS and EXTERNAL. So when PLAIN is configured the bridge accepts TCP itself,
runs the short SASL exchange (mechanisms, init, outcome) on a helper thread with a
deadline, and only then hands the authenticated socket to the reactor, as a plain AMQP
connection. Passwords are compared in constant time and never logged. TLS (and PLAIN
over TLS) goes through proton's own listener and ``SSLDomain``; PLAIN over TLS is refused
at settings time because that needs Cyrus. With ``workers > 1`` the bridge's own listener
also opens the port with ``SO_REUSEPORT`` so that every worker process accepts on it.
"""

from __future__ import annotations

import hmac
import logging
import socket
import struct
import threading
from collections import deque
from typing import Any

from proton import Data, Described, Transport, Url, ulong
from proton.handlers import IOHandler
from proton.reactor import ApplicationEvent, Container

from amqp_kafka_bridge.settings import BridgeSettings
from amqp_kafka_bridge.tls import ssl_domain

log = logging.getLogger("bridge.auth")

SASL_HEADER = b"AMQP\x03\x01\x00\x00"
AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
_MECHANISMS, _INIT, _OUTCOME = 0x40, 0x41, 0x44
OK, AUTH_FAILED = 0, 1


def sasl_frame(descriptor: int, fields: list[Any], symbols: list[str] | None = None) -> bytes:
    """One SASL frame (type 1) whose body is the described list ``fields`` (``symbols``: a symbol array first)."""
    d = Data()
    d.put_described()
    d.enter()
    d.put_ulong(descriptor)
    d.put_list()
    d.enter()
    if symbols is not None:
        d.put_array(False, Data.SYMBOL)
        d.enter()
        for name in symbols:
            d.put_symbol(name)
        d.exit()
    for value in fields:
        d.put_object(value)
    d.exit()
    d.exit()
    body = d.encode()
    return struct.pack(">IBBH", 8 + len(body), 2, 1, 0) + body


def parse_sasl_frame(frame: bytes) -> tuple[int, list[Any]]:
    """A SASL frame (with its 8-byte header) -> (descriptor code, fields). Raises ValueError."""
    size, doff, ftype, _ = struct.unpack(">IBBH", frame[:8])
    if ftype != 1 or size != len(frame):
        raise ValueError("not a SASL frame")
    d = Data()
    d.decode(frame[doff * 4 :])
    d.rewind()
    d.next()
    obj = d.get_object()
    if not isinstance(obj, Described):
        raise ValueError("SASL frame body is not a described list")
    code = int(obj.descriptor) if isinstance(obj.descriptor, int) else {"amqp:sasl-init:list": _INIT}.get(str(obj.descriptor), -1)
    # Binary fields are views into ``d``'s buffer: copy them before ``d`` goes away.
    return code, [bytes(v) if isinstance(v, memoryview) else v for v in obj.value]


def check_plain(response: bytes, users: dict[str, str]) -> str | None:
    """The user a PLAIN initial response (authzid NUL authcid NUL password) authenticates, or None."""
    parts = bytes(response).split(b"\x00")
    if len(parts) != 3:
        return None
    user, password = parts[1].decode(errors="replace"), parts[2]
    expected = users.get(user)
    if expected is None:
        hmac.compare_digest(password, password)  # keep timing alike for unknown users
        return None
    return user if hmac.compare_digest(password, expected.encode()) else None


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed during SASL")
        buf += chunk
    return buf


class SaslListener:
    """A listening socket in the reactor whose connections must pass SASL (PLAIN, and ANONYMOUS if allowed) first."""

    def __init__(self, container: Container, settings: BridgeSettings, core: Any, timeout: float = 10.0) -> None:
        self.container = container
        self.core = core
        self.timeout = timeout
        self.mechanisms = list(settings.sasl_mechanisms)
        self.users = {name: secret.get_secret_value() for name, secret in settings.users.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if settings.workers > 1:  # every worker process binds the port; the kernel spreads connections
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.sock.bind((settings.amqp_host, settings.amqp_port))
        self.sock.listen(128)
        self.sock.setblocking(False)
        self._ready: deque[tuple[socket.socket, tuple[str, int], bytes]] = deque()
        self._selectable = container.selectable(handler=self, delegate=self.sock)
        self._selectable.reading = True
        self._selectable._transport = None  # as proton's Acceptor: tells the IO handler this is no connection
        container.update(self._selectable)

    def on_selectable_readable(self, event: Any) -> None:
        try:
            sock, addr = self.sock.accept()
        except BlockingIOError:
            return
        threading.Thread(target=self._negotiate, args=(sock, addr), name="bridge-sasl", daemon=True).start()

    def _negotiate(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        sock.setblocking(True)
        sock.settimeout(self.timeout)
        user = None
        try:
            header = _recv_exact(sock, 8)
            if header == AMQP_HEADER and "ANONYMOUS" in self.mechanisms:
                leftover, user = header, "anonymous"
            elif header == SASL_HEADER:
                sock.sendall(SASL_HEADER + sasl_frame(_MECHANISMS, [], symbols=self.mechanisms))
                (size,) = struct.unpack(">I", _recv_exact(sock, 4))
                if size > 65536:
                    raise ValueError("SASL frame too large")
                code, fields = parse_sasl_frame(struct.pack(">I", size) + _recv_exact(sock, size - 4))
                mechanism = str(fields[0]) if code == _INIT and fields else ""
                response = fields[1] if len(fields) > 1 and fields[1] is not None else b""
                if mechanism == "PLAIN" and "PLAIN" in self.mechanisms:
                    user = check_plain(response, self.users)
                elif mechanism == "ANONYMOUS" and "ANONYMOUS" in self.mechanisms:
                    user = "anonymous"
                sock.sendall(sasl_frame(_OUTCOME, [_ubyte(OK if user else AUTH_FAILED)]))
                leftover = b""
            else:
                sock.sendall(SASL_HEADER)
                raise ValueError("client did not offer SASL")
            if user is None:
                raise PermissionError("authentication failed")
        except (OSError, ValueError, IndexError) as exc:
            self.core.metrics.auth_failures.inc()
            log.warning(
                "connection refused at SASL", extra={"peer": f"{addr[0]}:{addr[1]}", "reason": str(exc) or type(exc).__name__}
            )
            sock.close()
            return
        log.info("connection authenticated", extra={"peer": f"{addr[0]}:{addr[1]}", "user": user})
        sock.settimeout(None)
        sock.setblocking(False)
        self._ready.append((sock, addr, leftover))
        self.core.injector.trigger(ApplicationEvent("sasl_done", subject=self))  # -> BridgeHandler.on_sasl_done -> adopt

    def adopt(self) -> None:
        """Reactor thread: hand authenticated sockets to proton, as its own Acceptor does for fresh ones."""
        container = self.container
        while self._ready:
            sock, addr, leftover = self._ready.popleft()
            conn = container.connection(container.handler)
            conn._acceptor = self  # proton's marker for "this connection already has its socket"
            conn.url = Url(host=addr[0], port=addr[1])
            transport = Transport(Transport.SERVER)
            transport.bind(conn)
            if leftover:
                transport.push(leftover)
            selectable = container.selectable(delegate=sock)
            selectable._transport = transport
            transport._selectable = selectable
            IOHandler.update(transport, selectable, container.now)

    def close(self) -> None:
        if not self._selectable.is_terminal:
            self._selectable.terminate()
            self._selectable.update()


def _ubyte(value: int) -> Any:
    from proton import ubyte

    return ubyte(value)


def listen(container: Container, settings: BridgeSettings, core: Any) -> Any:
    """Open the server-mode listener: proton's own (ANONYMOUS, optionally TLS) or a ``SaslListener`` for PLAIN."""
    if "PLAIN" in settings.sasl_mechanisms or settings.workers > 1:
        return SaslListener(container, settings, core)
    scheme = "amqps" if settings.tls_cert_file else "amqp"
    return container.listen(f"{scheme}://{settings.amqp_host}:{settings.amqp_port}", ssl_domain(settings))


__all__ = ["SaslListener", "check_plain", "listen", "parse_sasl_frame", "sasl_frame", "ulong"]
