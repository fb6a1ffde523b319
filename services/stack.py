"""The local services together, as one context manager for the demo, ``make up`` and the tests."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Protocol

from services.activemq import ActiveMQService
from services.artemis import ArtemisService
from services.fetch import fetch_all
from services.kafka import KafkaService
from services.process import BackgroundProcess
from services.rabbitmq import RabbitMQService
from services.settings import ServiceSettings


class AmqpBroker(Protocol):
    """What every local AMQP 1.0 broker offers (Artemis, ActiveMQ Classic, RabbitMQ)."""

    process: BackgroundProcess

    @property
    def url(self) -> str: ...
    def start(self) -> None: ...
    def wait_ready(self, timeout: float = 90.0) -> None: ...
    def stop(self, timeout: float = 30.0) -> None: ...
    def kill(self) -> None: ...
    def ready(self) -> bool: ...


def make_broker(settings: ServiceSettings, artemis_home: Path, activemq_home: Path | None) -> AmqpBroker:
    """The broker ``settings.broker`` names."""
    if settings.broker == "activemq":
        if activemq_home is None:
            raise ValueError("ActiveMQ Classic was not fetched: fetch_all() with BROKER=activemq fetches it")
        return ActiveMQService(settings, activemq_home)
    if settings.broker == "rabbitmq":
        return RabbitMQService(settings)
    return ArtemisService(settings, artemis_home)


def all_brokers(settings: ServiceSettings) -> list[AmqpBroker]:
    """A handle on each kind of broker in ``settings.run_dir``, for stopping whatever runs there."""
    return [ArtemisService(settings, Path()), ActiveMQService(settings, Path()), RabbitMQService(settings)]


class LocalServices:
    """The chosen AMQP broker (``BROKER``, Artemis by default) and Kafka started side by side, then probed.

    ``start()`` is idempotent: a service whose pid file names a live process is left alone.
    """

    def __init__(self, settings: ServiceSettings | None = None) -> None:
        self.settings = settings or ServiceSettings.from_env()
        parts = fetch_all(self.settings)
        self.broker = make_broker(self.settings, parts.artemis_home, parts.activemq_home)
        self.kafka = KafkaService(self.settings, parts.kafka_libs)
        self.spark_kafka_jars = parts.spark_kafka_jars

    @property
    def artemis(self) -> AmqpBroker:
        """The AMQP broker, whichever ``BROKER`` chose (the name is the default's, kept for existing callers)."""
        return self.broker

    @property
    def broker_name(self) -> str:
        return self.settings.broker

    @property
    def amqp_url(self) -> str:
        return self.broker.url

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap

    def start(self, timeout: float = 120.0) -> LocalServices:
        try:
            self.broker.start()
            self.kafka.start()
            self.broker.wait_ready(timeout)
            self.kafka.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.kafka.stop()
        self.broker.stop()

    def __enter__(self) -> LocalServices:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
