"""The cluster scenarios run only from ``make cluster-test`` (``CLUSTER_TEST=1``): they take the whole
machine for ~15 minutes and build a dozen hosts, so the everyday ``make test`` leaves them out (it
runs the quick host tests only)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.harness import Cluster
from cluster.hosts import unavailable
from deploy import package

collect_ignore = [] if os.environ.get("CLUSTER_TEST") == "1" else ["test_cluster_scenarios.py"]

# One line per scenario, printed again at the end of the session.
SCENARIO_LINES: list[str] = []


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The hosts, brokers and Spark cluster, shared by the scenarios (each uses names of its own)."""
    reason = unavailable()
    if reason:
        pytest.skip(f"the cluster of hosts: {reason}")
    with Cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


@pytest.fixture(scope="session")
def jobs_zip(cluster: Cluster) -> Path:
    """The jobs as the driver host ships them to executors (``--py-files``), built once."""
    return package.build(cluster.network["spark-master"].folder / "jobs.zip")


@pytest.fixture(scope="session")
def jars(spark_kafka_jars: tuple[Path, ...]) -> list[str]:
    return [str(p) for p in spark_kafka_jars]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SCENARIO_LINES:
        terminalreporter.section("cluster scenarios")
        for line in SCENARIO_LINES:
            terminalreporter.write_line(line)
