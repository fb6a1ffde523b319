"""Readiness checks over the real protocols: an AMQP open and a Kafka metadata request."""

from __future__ import annotations

import logging

from services.process import port_in_use


def amqp_ready(host: str, port: int, user: str | None = None, password: str | None = None) -> bool:
    """True when an AMQP 1.0 connection to ``host:port`` opens (and closes) cleanly."""
    if not port_in_use(host, port):
        return False
    from proton.utils import BlockingConnection

    try:
        conn = BlockingConnection(f"amqp://{host}:{port}", timeout=3, user=user, password=password)
        conn.close()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"; the caller has the deadline
        return False


_quiet = logging.getLogger("services.probes.kafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def kafka_ready(bootstrap: str) -> bool:
    """True when the broker answers a metadata request with at least one broker in it."""
    host, _, port = bootstrap.rpartition(":")
    if not port_in_use(host, int(port)):
        return False
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": _quiet})
    try:
        return len(admin.list_topics(timeout=3).brokers) > 0
    except Exception:  # noqa: BLE001 - KafkaException while the broker is still starting
        return False
