"""Fixtures for the bridge tests: an in-process bridge on free ports (helpers in :mod:`tests.bridge.helpers`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from amqp_kafka_bridge import Bridge, BridgeSettings

from tests.bridge.helpers import (  # noqa: F401 - re-exported for older imports
    ROOT,
    BridgeProcess,
    committed,
    consume,
    create_topic,
    free_port,
    produce,
    wait_committed,
    wait_ready,
)


@pytest.fixture
def start_bridge(kafka_bootstrap: str) -> Iterator[Callable[..., Bridge]]:
    """``start_bridge(**settings)`` -> a started in-process bridge on free ports (``.url``), stopped after the test."""
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
