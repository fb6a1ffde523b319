"""Prometheus metrics of one bridge instance (its own registry, so several bridges can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class BridgeMetrics:
    """Counters are labelled by ``link`` (the AMQP link name), ``topic`` and, where it helps, ``reason``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_in = Counter(
            "bridge_amqp_to_kafka_messages", "AMQP deliveries acknowledged by Kafka", ["link", "topic"], registry=r
        )
        self.bytes_in = Counter(
            "bridge_amqp_to_kafka_bytes", "Record value bytes acknowledged by Kafka", ["link", "topic"], registry=r
        )
        self.messages_out = Counter(
            "bridge_kafka_to_amqp_messages", "Records accepted by AMQP peers", ["link", "topic"], registry=r
        )
        self.bytes_out = Counter(
            "bridge_kafka_to_amqp_bytes", "Record value bytes accepted by AMQP peers", ["link", "topic"], registry=r
        )
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
        self.kafka_errors = Counter("bridge_kafka_errors", "Kafka client errors", ["kind"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
