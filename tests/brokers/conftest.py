"""What differs per broker, for the tests that run on each (``BROKER=artemis|activemq|rabbitmq``).

``durable_queue(name)`` gives an address whose messages survive a broker SIGKILL: a bare
name on Artemis and ActiveMQ Classic (auto-created, persistent), a queue declared durable
through ``rabbitmqctl`` and addressed ``/amq/queue/<name>`` on RabbitMQ (the queue RabbitMQ
declares for a bare name is not durable).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def durable_queue(broker_name: str, local_services: object | None) -> Callable[[str], str]:
    def make(name: str) -> str:
        if broker_name != "rabbitmq":
            return name
        if local_services is None:
            pytest.skip("declaring a durable RabbitMQ queue needs the session's own node (rabbitmqctl)")
        from services.topology import declare_rabbitmq

        declare_rabbitmq(local_services.settings, queues=[name])  # type: ignore[attr-defined]
        return f"/amq/queue/{name}"

    return make


@pytest.fixture
def own_broker(local_services: object | None) -> object:
    """The session's broker handle (for SIGKILL and restart); skips against external services."""
    if local_services is None:
        pytest.skip("needs the session's own broker to kill and restart (AMQP_URL/KAFKA_BOOTSTRAP point elsewhere)")
    return local_services.broker  # type: ignore[attr-defined]
