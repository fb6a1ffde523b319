"""Session fixtures: one set of real services and one SparkSession for the whole test run.

Services come from, in order: ``AMQP_URL`` and ``KAFKA_BOOTSTRAP`` when both are set
(an already running broker/Kafka, e.g. after ``make up``); otherwise a private broker
and Kafka started on free ports in a temporary folder and stopped at the end. ``BROKER``
(artemis, activemq, rabbitmq; artemis by default) chooses the broker: the whole suite
runs on Artemis, ``tests/brokers`` on each (``make test-brokers``). (Where a
Docker engine exists, ``testcontainers`` could provide them too; this project does not
depend on it.) Every test gets its own addresses and topics from ``unique_name``.
"""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from amqp_kafka_bridge import Bridge, BridgeSettings

from tests.bridge.helpers import free_port
from tests.waiting import wait_for  # noqa: F401 - re-exported for older imports

# The fault-run driver checks with plain asserts outside a test module: rewritten like a test's, a
# failing check shows its values. Must come before anything imports the driver.
pytest.register_assert_rewrite("tests.faults.driver")

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# Spark's Python workers must run this interpreter (the venv's), not whatever python3 is on PATH.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def local_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object | None]:
    """The services this session started (with ``.artemis``/``.kafka`` handles for fault tests), or None if external."""
    if os.environ.get("AMQP_URL") and os.environ.get("KAFKA_BOOTSTRAP"):
        yield None
        return
    from services import LocalServices, ServiceSettings

    settings = ServiceSettings.from_env().with_free_ports(tmp_path_factory.mktemp("services"))
    with LocalServices(settings) as svc:
        yield svc


@pytest.fixture(scope="session")
def broker_name(local_services: object | None) -> str:
    """Which AMQP broker the session runs against: ``artemis``, ``activemq`` or ``rabbitmq``."""
    if local_services is not None:
        return local_services.settings.broker  # type: ignore[attr-defined]
    return (os.environ.get("BROKER") or "artemis").strip().lower()


@pytest.fixture(scope="session")
def amqp_url(local_services: object | None) -> str:
    return os.environ["AMQP_URL"] if local_services is None else local_services.amqp_url  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def kafka_bootstrap(local_services: object | None) -> str:
    return os.environ["KAFKA_BOOTSTRAP"] if local_services is None else local_services.kafka_bootstrap  # type: ignore[attr-defined]


_counter = itertools.count()
_run_id = uuid.uuid4().hex[:6]


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_name("temperature")`` -> a fresh address/topic name, never reused in this run."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{request.node.name[:30].strip('_')}-{_run_id}-{next(_counter)}".replace("[", "-").replace("]", "")

    return make


@pytest.fixture(scope="session")
def spark_kafka_jars() -> tuple[Path, ...]:
    from services.fetch import fetch_spark_kafka
    from services.settings import ServiceSettings

    return fetch_spark_kafka(ServiceSettings.from_env())


@pytest.fixture(scope="session")
def spark(spark_kafka_jars: tuple[Path, ...], local_services: object | None) -> Iterator[object]:
    """One local SparkSession for the run, with Spark's Kafka connector on its classpath.

    It depends on ``local_services`` so that it stops before the brokers do.
    """
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("amqp-spark-kafka-tests")
        .config("spark.jars", ",".join(str(p) for p in spark_kafka_jars))
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.streaming.forceDeleteTempCheckpointLocation", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    from pyspark_amqp import AmqpDataSource

    session.dataSource.register(AmqpDataSource)
    yield session
    session.stop()


@pytest.fixture
def start_bridge(kafka_bootstrap: str) -> Iterator[Callable[..., Bridge]]:
    """For any test (bridge, connector, broker matrix): ``start_bridge(**settings)`` -> a started in-process bridge on free ports (``.url``), stopped after the test."""
    running: list[Bridge] = []

    def start(**overrides: Any) -> Bridge:
        values: dict[str, Any] = {
            "amqp_port": free_port(),
            "http_port": free_port(),
            "kafka_bootstrap": kafka_bootstrap,
            "drain_timeout_s": 5.0,
        }
        values.update(overrides)
        bridge = Bridge(BridgeSettings.load(**values)).start()
        bridge.url = f"amqp://127.0.0.1:{bridge.settings.amqp_port}"  # type: ignore[attr-defined]
        running.append(bridge)
        return bridge

    yield start
    for bridge in running:
        bridge.stop(timeout=15)
