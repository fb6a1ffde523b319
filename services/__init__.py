"""Fetch and run the real local services: an AMQP 1.0 broker and Apache Kafka (KRaft).

The demo, the tests and ``make up`` all go through this package, so that one code path
starts the brokers everywhere. Nothing here is a mock: the broker (``BROKER``: ActiveMQ
Artemis by default, ActiveMQ Classic, or RabbitMQ from Debian's packages) and Kafka are the
real distributions, launched as background processes on loopback ports.

>>> from services import LocalServices, ServiceSettings
>>> with LocalServices(ServiceSettings.from_env()) as svc:   # doctest: +SKIP
...     print(svc.amqp_url, svc.kafka_bootstrap)
"""

from services.settings import ServiceSettings
from services.stack import LocalServices

__all__ = ["LocalServices", "ServiceSettings"]
