"""Both local services together, as one context manager for the demo, ``make up`` and the tests."""

from __future__ import annotations

from types import TracebackType

from services.artemis import ArtemisService
from services.fetch import fetch_all
from services.kafka import KafkaService
from services.settings import ServiceSettings


class LocalServices:
    """Artemis and Kafka started side by side (their JVMs boot in parallel), then probed.

    ``start()`` is idempotent: a service whose pid file names a live process is left alone.
    """

    def __init__(self, settings: ServiceSettings | None = None) -> None:
        self.settings = settings or ServiceSettings.from_env()
        parts = fetch_all(self.settings)
        self.artemis = ArtemisService(self.settings, parts.artemis_home)
        self.kafka = KafkaService(self.settings, parts.kafka_libs)
        self.spark_kafka_jars = parts.spark_kafka_jars

    @property
    def amqp_url(self) -> str:
        return self.artemis.url

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap

    def start(self, timeout: float = 120.0) -> LocalServices:
        try:
            self.artemis.start()
            self.kafka.start()
            self.artemis.wait_ready(timeout)
            self.kafka.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.kafka.stop()
        self.artemis.stop()

    def __enter__(self) -> LocalServices:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
