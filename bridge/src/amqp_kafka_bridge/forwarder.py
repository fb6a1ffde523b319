"""Forwarder mode: the bridge connects to a broker as a client and moves messages along configured routes.

A ``to-kafka`` route opens a receiver on the broker address and produces to the topic (the
broker delivery is accepted only after Kafka acknowledged); a ``to-amqp`` route consumes the
topic in group ``route.group`` and sends to the address (the offset is committed only after
the broker accepted). ``broker_urls`` are tried in turn, with proton's reconnect back-off.
"""

from __future__ import annotations

import logging
from typing import Any

from amqp_message_model.connection import ConnectionOptions, connect_kwargs, parse_endpoints, redact_url
from proton import Connection, Link
from proton.reactor import Container

from amqp_kafka_bridge.core import BridgeCore
from amqp_kafka_bridge.kafka_io import SourceSpec
from amqp_kafka_bridge.settings import BridgeSettings

log = logging.getLogger("bridge.forwarder")


class Forwarder:
    """Opens one link per route on one broker connection and re-opens them after a reconnect.

    The forwarder-mode front of ``amqp_kafka_bridge.endpoint.BridgeHandler`` (see ``endpoint.Front``).
    """

    def __init__(self, core: BridgeCore, settings: BridgeSettings) -> None:
        if not settings.routes:
            raise ValueError("forwarder mode needs routes (routes: [...] in the config or routes_file)")
        self.core = core
        self.settings = settings
        self.connection: Any = None
        self._links: list[tuple[Link, Any]] = []
        self._opens = 0
        self._last_failure = ""
        self.connected = False  # the broker connection is open (readiness: a forwarder without it moves nothing)

    def start(self, container: Container) -> None:
        urls = self.settings.broker_urls
        # The short idle timeout makes a silently vanished broker show up within seconds, not at the next write.
        options = ConnectionOptions(parse_endpoints(",".join(urls)), connect_timeout_s=2.0, max_reconnect_delay_s=5.0)
        user = options.endpoints[0].user
        log.info(
            "forwarder connecting",
            extra={"brokers": [redact_url(u) for u in urls], "routes": len(self.settings.routes), "user": user},
        )
        self.connection = container.connect(**connect_kwargs(options, reconnect=True))
        self._open_links(container)

    @property
    def ready(self) -> bool:
        return self.connected

    def stop_accepting(self) -> None:
        """Nothing to stop: the forwarder accepts no connections (its links drain with the core)."""

    def on_link_opening(self, link: Link) -> None:
        """A broker does not open links towards the forwarder; its own links are bound in ``start``."""

    def _open_links(self, container: Container) -> None:
        for route in self.settings.routes:
            if route.direction == "to-kafka":
                link = container.create_receiver(self.connection, route.address, name=f"fwd:{route.address}->{route.topic}")
            else:
                link = container.create_sender(self.connection, route.address, name=f"fwd:{route.topic}->{route.address}")
            self._links.append((link, route))
            self._bind(link, route)

    def _bind(self, link: Link, route: Any) -> None:
        if route.direction == "to-kafka":
            self.core.attach_inbound(link, route.topic)
        else:
            self.core.attach_outbound(link, SourceSpec(route.topic, route.group or f"bridge-{route.address}"))

    def on_connection_opened(self, connection: Connection) -> None:
        """Each (re)open of the broker connection. Proton re-attaches the same links after a reconnect;
        their unsettled deliveries died with the old transport (the broker redelivers, Kafka
        replays from the committed offset), so each link gets fresh bridging state."""
        if connection != self.connection:
            return
        self._opens += 1
        self.connected = True
        self._last_failure = ""
        log.info("forwarder connected", extra={"broker": redact_url(str(self.connection.url)), "opens": self._opens})
        for link, route in self._links:
            bridged = self.core.bridged(link)
            if self._opens == 1 and bridged is not None and not bridged.closed:
                continue  # first connection, links bound in start() and still good
            self.core.forget(link)
            self._bind(link, route)

    def on_connection_failed(self, connection: Connection, reason: str) -> None:
        """The broker connection failed; logged when the reason changes (not on every retry)."""
        if connection != self.connection:
            return
        if reason != self._last_failure:
            log.warning(
                "forwarder cannot use the broker connection; retrying",
                extra={"broker": redact_url(str(self.connection.url)), "reason": reason},
            )
        self._last_failure = reason

    def on_connection_lost(self, connection: Connection) -> None:
        """The broker connection dropped (proton reconnects with back-off)."""
        if connection != self.connection:
            return
        if self.connected:
            log.warning(
                "forwarder lost the broker connection; reconnecting", extra={"broker": redact_url(str(self.connection.url))}
            )
        self.connected = False
