"""What goes into the executors' packed environment, and the spark-submit environment around it (no build)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from deploy import executor_env

pytestmark = pytest.mark.unit


def fake_wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    """A wheel with only its METADATA: what :func:`executor_env.runtime_requirements` reads."""
    dist = name.replace("-", "_")
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    metadata = "\n".join(
        ["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}", *(f"Requires-Dist: {r}" for r in requires)]
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}-{version}.dist-info/METADATA", metadata + "\n")
    return path


def test_the_environment_gets_the_wheels_dependencies_but_not_pyspark_nor_the_wheels(tmp_path: Path) -> None:
    connector = fake_wheel(
        tmp_path, "pyspark-amqp", "0.2.0",
        ["amqp-message-model==0.2.0", "pyspark<5,>=4.2", "pyarrow>=15", "pandas>=2.2", "python-qpid-proton>=0.40",
         "pytest; extra == 'test'"],
    )  # fmt: skip
    model = fake_wheel(tmp_path, "amqp-message-model", "0.2.0", ["python-qpid-proton>=0.40"])
    wheels = executor_env.find_wheels(tmp_path)
    assert wheels == [connector, model]
    assert executor_env.runtime_requirements(wheels) == ["pyarrow>=15", "pandas>=2.2", "python-qpid-proton>=0.40"]


def test_a_missing_wheel_is_named_with_the_way_out(tmp_path: Path) -> None:
    fake_wheel(tmp_path, "pyspark-amqp", "0.2.0", [])
    with pytest.raises(executor_env.ExecutorEnvError, match=r"no amqp_message_model wheel in .*make dist"):
        executor_env.find_wheels(tmp_path)


def test_an_existing_env_dir_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "environment").mkdir()
    with pytest.raises(executor_env.ExecutorEnvError, match="exists"):
        executor_env.build_venv(tmp_path / "environment", tmp_path)


def test_submit_env_points_every_python_at_the_shipped_interpreter() -> None:
    base = {"PATH": "/usr/bin", "PYTHONPATH": "/repo", "PYSPARK_DRIVER_PYTHON": "/repo/.venv/bin/python", "PYSPARK_PYTHON": "x"}
    env = executor_env.submit_env(base, spark_home="/opt/spark")
    assert env == {"PATH": "/usr/bin", "PYSPARK_PYTHON": "./environment/bin/python", "SPARK_HOME": "/opt/spark"}
