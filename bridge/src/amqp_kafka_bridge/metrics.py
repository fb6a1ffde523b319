"""Prometheus metrics of one bridge instance (its own registry, so several bridges can share a process).

Series are labelled only by what operators aggregate on and what stays bounded: ``topic``
(records are counted only once Kafka or a peer took them, so only existing topics appear),
``role``/``direction``, ``reason``/``outcome`` from fixed sets. Never by link name or peer:
those are unique per client and would grow the scrape, and the process, without bound.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector


class BridgeMetrics:
    """The bridge's metrics, with process, platform and GC collectors and ``bridge_build_info``."""

    def __init__(self) -> None:
        from amqp_kafka_bridge import __version__

        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        Info("bridge_build", "The bridge's version and its AMQP/Kafka client libraries", registry=r).info(
            _build_info(__version__)
        )
        self.messages_in = Counter(
            "bridge_amqp_to_kafka_messages", "AMQP deliveries acknowledged by Kafka", ["topic"], registry=r
        )
        self.bytes_in = Counter("bridge_amqp_to_kafka_bytes", "Record value bytes acknowledged by Kafka", ["topic"], registry=r)
        self.messages_out = Counter("bridge_kafka_to_amqp_messages", "Records accepted by AMQP peers", ["topic"], registry=r)
        self.bytes_out = Counter("bridge_kafka_to_amqp_bytes", "Record value bytes accepted by AMQP peers", ["topic"], registry=r)
        self.rejected = Counter(
            "bridge_rejected_messages", "AMQP deliveries the bridge rejected", ["topic", "reason"], registry=r
        )
        self.released = Counter(
            "bridge_released_messages", "AMQP deliveries the bridge released (Kafka failed)", ["topic"], registry=r
        )
        self.redelivered = Counter("bridge_redelivered_messages", "Records sent again after release", ["topic"], registry=r)
        self.dead_lettered = Counter(
            "bridge_dead_lettered_messages", "Records written to a dead-letter topic", ["topic"], registry=r
        )
        self.peer_rejected = Counter(
            "bridge_peer_rejected_messages", "Records the AMQP peer rejected or released", ["topic", "outcome"], registry=r
        )
        self.latency = Histogram(
            "bridge_amqp_to_kafka_latency_seconds",
            "From a complete AMQP delivery to its Kafka acknowledgement",
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        )
        self.in_flight = Gauge("bridge_in_flight_deliveries", "AMQP deliveries waiting for Kafka", registry=r)
        self.links = Gauge("bridge_open_links", "Open AMQP links", ["role"], registry=r)
        self.connections = Gauge("bridge_open_connections", "Open AMQP connections", registry=r)
        self.auth_failures = Counter("bridge_auth_failures", "Connections refused at SASL", registry=r)
        self.unauthorized = Counter(
            "bridge_unauthorized_attaches", "Links refused by the acl rules (amqp:unauthorized-access)", ["direction"], registry=r
        )
        self.kafka_errors = Counter("bridge_kafka_errors", "Kafka client errors", ["kind"], registry=r)

    def connection_opened(self, conn: Any) -> None:
        """Count ``conn`` open once (the mark lives on proton's connection record, not the Python wrapper)."""
        if not getattr(conn, "bridge_counted", False):
            conn.bridge_counted = True
            self.connections.inc()

    def connection_ended(self, conn: Any) -> None:
        """Idempotent: called on close, on error and when the transport goes, whichever comes first."""
        if getattr(conn, "bridge_counted", False):
            conn.bridge_counted = False
            self.connections.dec()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _build_info(version: str) -> dict[str, str]:
    import platform

    import confluent_kafka
    import proton

    return {
        "version": version,
        "python": platform.python_version(),
        "proton": ".".join(str(p) for p in getattr(proton, "VERSION", ())) or "unknown",
        "proton_cyrus_sasl": str(proton.SASL.extended()).lower(),
        "librdkafka": confluent_kafka.libversion()[0],
    }
