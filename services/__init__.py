"""Fetch and run the real local services: ActiveMQ Artemis (AMQP 1.0) and Apache Kafka (KRaft).

The demo, the tests and ``make up`` all go through this package, so that one code path
starts the brokers everywhere. Nothing here is a mock: the brokers are the JVM
distributions from Maven Central, launched as background processes on loopback ports.

>>> from services import LocalServices, ServiceSettings
>>> with LocalServices(ServiceSettings.from_env()) as svc:   # doctest: +SKIP
...     print(svc.amqp_url, svc.kafka_bootstrap)
"""

from services.settings import ServiceSettings
from services.stack import LocalServices

__all__ = ["LocalServices", "ServiceSettings"]
