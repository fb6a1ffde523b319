"""One build of the project's wheels for every packaging test of the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy import package


@pytest.fixture(scope="session")
def project_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the checkout with the three wheels ``make dist`` builds."""
    out = tmp_path_factory.mktemp("wheels")
    built = package.build_wheels(out)
    assert {w.name.split("-")[0] for w in built} == {"amqp_message_model", "pyspark_amqp", "amqp_kafka_bridge"}
    return out
