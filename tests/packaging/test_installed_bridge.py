"""The bridge's wheel in a new venv: the command works, its native lane loads and pyspark stays out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.packaging.venvs import new_venv, wheel_version

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_a_new_venv_with_the_bridge_wheel_has_the_command_and_no_pyspark(
    project_wheels: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    user = new_venv(tmp_path_factory.mktemp("bridge-user") / "venv")
    user.pip_install(project_wheels, "amqp-kafka-bridge")

    listed = user.run([str(user.python), "-m", "pip", "list", "--format", "json"], timeout=120)
    assert listed.returncode == 0, listed.stderr
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listed.stdout)}
    version = wheel_version(project_wheels, "amqp-kafka-bridge")
    assert installed["amqp-kafka-bridge"] == version and "amqp-message-model" in installed
    assert "pyspark" not in installed and "py4j" not in installed, sorted(installed)

    command = str(user.bin / "amqp-kafka-bridge")
    helped = user.run([command, "--help"], timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: amqp-kafka-bridge") and "--kafka-bootstrap" in helped.stdout
    versioned = user.run([command, "--version"], timeout=120)
    assert versioned.returncode == 0, versioned.stderr
    assert versioned.stdout.strip() == f"amqp-kafka-bridge {version}"

    where = user.run([str(user.python), "-c", "import amqp_kafka_bridge; print(amqp_kafka_bridge.__file__)"], timeout=120)
    assert Path(where.stdout.strip()).is_relative_to(user.root), where.stdout + where.stderr

    # the wheel carries the native lane, and it finds the venv's own librdkafka and proton-c
    lane = "from amqp_kafka_bridge import producer_lane as p; m = p.load(); print(m.__file__ if m else f'none: {p._why_not}')"
    native = user.run([str(user.python), "-c", lane], timeout=120)
    assert Path(native.stdout.strip()).is_relative_to(user.root), native.stdout + native.stderr
