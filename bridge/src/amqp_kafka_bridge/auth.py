"""The server-mode listener: TLS and SASL through proton's Cyrus integration, on a port workers can share.

Proton's own ``Container.listen`` configures TLS but no SASL, and binds the port without
``SO_REUSEPORT``. This listener accepts the same way proton's ``Acceptor`` does and gives
each server transport:

- TLS from ``tls.ssl_domain`` (client certificates when ``tls_ca_file`` is set);
- SASL with ``allowed_mechs`` = ``sasl_mechanisms``, served by Cyrus from the configuration
  ``sasl.cyrus_config`` writes (or the operator's own directory): PLAIN, SCRAM-SHA-256/512
  against a sasldb, EXTERNAL from the client certificate, ANONYMOUS;
- ``allow_insecure_mechs`` only when ``allow_plain_without_tls`` says so;
- ``require_auth`` unless ANONYMOUS is allowed, so a client that skips SASL is refused.

With ``workers > 1`` every worker process binds the port with ``SO_REUSEPORT`` and the kernel
spreads connections over them. Passwords never pass through Python: Cyrus checks them.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from proton import Transport, Url
from proton.handlers import IOHandler
from proton.reactor import Container

from amqp_kafka_bridge.sasl import CyrusConfig
from amqp_kafka_bridge.settings import BridgeSettings
from amqp_kafka_bridge.tls import ssl_domain

log = logging.getLogger("bridge.auth")


def _bind(settings: BridgeSettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.amqp_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if settings.workers > 1:  # every worker process binds the port; the kernel spreads connections
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((settings.amqp_host, settings.amqp_port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class AmqpListener:
    """A listening socket in the reactor; each accepted connection gets the bridge's TLS and SASL configuration."""

    def __init__(self, container: Container, settings: BridgeSettings, cyrus: CyrusConfig) -> None:
        self.container = container
        self.mechanisms = " ".join(settings.sasl_mechanisms)
        self.anonymous = "ANONYMOUS" in settings.sasl_mechanisms
        self.insecure = settings.allow_plain_without_tls
        self.cyrus = cyrus
        self.domain = ssl_domain(settings)
        self.sock = _bind(settings)
        self._selectable = container.selectable(handler=self, delegate=self.sock)
        self._selectable.reading = True
        self._selectable._transport = None  # as proton's Acceptor: tells the IO handler this is no connection
        container.update(self._selectable)

    def on_selectable_readable(self, event: Any) -> None:
        try:
            sock, addr = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        container = self.container
        conn = container.connection(container.handler)
        conn._acceptor = self  # proton's marker for "this connection already has its socket"
        conn.url = Url(host=addr[0], port=addr[1])
        transport = Transport(Transport.SERVER)
        if self.domain is not None:
            transport.ssl(self.domain)
        if not self.anonymous:
            transport.require_auth(True)
        sasl = transport.sasl()
        sasl.allowed_mechs(self.mechanisms)
        sasl.allow_insecure_mechs = self.insecure
        sasl.config_path(str(self.cyrus.directory))
        sasl.config_name(self.cyrus.name)
        transport.bind(conn)
        selectable = container.selectable(delegate=sock)
        selectable._transport = transport
        transport._selectable = selectable
        IOHandler.update(transport, selectable, container.now)

    def close(self) -> None:
        if not self._selectable.is_terminal:
            self._selectable.terminate()
            self._selectable.update()


def listen(container: Container, settings: BridgeSettings, cyrus: CyrusConfig) -> AmqpListener:
    """Open the server-mode listener (TLS if a certificate is set, SASL per ``sasl_mechanisms``)."""
    return AmqpListener(container, settings, cyrus)
