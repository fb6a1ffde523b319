"""The server-mode listener: TLS and SASL through proton's Cyrus integration, on its port or from a supervisor.

Proton's own ``Container.listen`` configures TLS but no SASL. This listener accepts the same
way proton's ``Acceptor`` does (or, as a ``--workers`` worker, receives connections the
supervisor accepted: ``amqp_kafka_bridge.handoff``) and gives each server transport:

- TLS from ``tls.ssl_domain`` (client certificates when ``tls_ca_file`` is set);
- SASL with ``allowed_mechs`` = ``sasl_mechanisms``, served by Cyrus from the configuration
  ``sasl.cyrus_config`` writes (or the operator's own directory): PLAIN, SCRAM-SHA-256/512
  against a sasldb, EXTERNAL from the client certificate, ANONYMOUS;
- ``allow_insecure_mechs`` only when ``allow_plain_without_tls`` says so;
- ``require_auth`` unless ANONYMOUS is allowed, so a client that skips SASL is refused.

A handed-off socket arrives before any byte was read, so TLS and SASL are the same either
way. Passwords never pass through Python: Cyrus checks them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from typing import Any

from proton import Transport, Url
from proton.handlers import IOHandler
from proton.reactor import Container

from amqp_kafka_bridge.handoff import WorkerChannel, bind, worker_channel
from amqp_kafka_bridge.sasl import CyrusConfig
from amqp_kafka_bridge.settings import BridgeSettings
from amqp_kafka_bridge.tls import ssl_domain

log = logging.getLogger("bridge.auth")


class AmqpListener:
    """A source of connections in the reactor; each gets the bridge's TLS and SASL configuration (:meth:`serve`).

    The source is the listening socket, or under a supervisor its hand-off channel
    (``amqp_kafka_bridge.handoff``): then each connection's end is reported back, so the
    supervisor knows how many this worker has open, and a supervisor that vanished (end of
    file: SIGKILLed) makes the worker drain and exit, as its SIGTERM would.
    """

    def __init__(
        self, container: Container, settings: BridgeSettings, cyrus: CyrusConfig, channel: WorkerChannel | None = None
    ) -> None:
        self.container = container
        self.mechanisms = " ".join(settings.sasl_mechanisms)
        self.anonymous = "ANONYMOUS" in settings.sasl_mechanisms
        self.insecure = settings.allow_plain_without_tls
        self.cyrus = cyrus
        self.domain = ssl_domain(settings)
        self.channel = channel
        self.sock = channel.sock if channel is not None else bind(settings.amqp_host, settings.amqp_port)
        self._selectable = container.selectable(handler=self, delegate=self.sock)
        self._selectable.reading = True
        self._selectable._transport = None  # as proton's Acceptor: tells the IO handler this is no connection
        container.update(self._selectable)
        if channel is not None:
            channel.ready()

    def on_selectable_readable(self, event: Any) -> None:
        if self.channel is None:
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            self.serve(sock)
            return
        received = self.channel.receive()
        if received is None:
            # Nothing can reach this worker any more: drain and exit as on the supervisor's SIGTERM.
            log.warning("the supervisor is gone: draining")
            self.close()
            os.kill(os.getpid(), signal.SIGTERM)
            return
        for sock in received:
            self.serve(sock)

    def serve(self, sock: socket.socket) -> None:
        """Give the connected ``sock`` a server transport with TLS and SASL, in the reactor."""
        sock.setblocking(False)
        try:
            addr = sock.getpeername()
        except OSError:  # the peer left while the connection was handed over
            sock.close()
            return
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
        selectable = container.selectable(delegate=sock)  # its close (proton's, at the end) reports a handed-off one
        selectable._transport = transport
        transport._selectable = selectable
        IOHandler.update(transport, selectable, container.now)

    def close(self) -> None:
        """No new connections. Under a supervisor the channel closes too: it then hands this worker none."""
        if not self._selectable.is_terminal:
            self._selectable.terminate()
            self._selectable.update()


def listen(container: Container, settings: BridgeSettings, cyrus: CyrusConfig) -> AmqpListener:
    """Open the server-mode listener (TLS if a certificate is set, SASL per ``sasl_mechanisms``).

    Under a ``--workers`` supervisor (``handoff.HANDOFF_ENV`` set) connections come from its
    hand-off channel; otherwise the listener binds ``amqp_host:amqp_port`` itself.
    """
    return AmqpListener(container, settings, cyrus, worker_channel())
