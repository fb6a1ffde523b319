"""The notebooks executed by nbclient against the services and the demo's output; their own asserts must pass
and their figures must show inline (an ``image/png`` output), not only in the saved file."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from proton import Message

from tests import amqp_clients
from tests.demo.demo_run import REPO_ROOT, DemoRun, read_topic

pytestmark = pytest.mark.integration

NOTEBOOKS = REPO_ROOT / "notebooks"


def _execute(name: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    """Run a notebook in a fresh kernel whose environment carries ``env`` (the notebook's parameters)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # Kernel "python3" from this venv first (ipykernel installs its spec there; jupyter_client
    # runs its "python" with this interpreter), ahead of any user-level spec of that name.
    paths = [str(Path(sys.prefix) / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")]
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(p for p in paths if p))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError if any cell (and so any of its asserts) fails
    return nb


def _printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def _inline_images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def _demo_env(demo_run: DemoRun, kafka_bootstrap: str, plot: Path) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TEMPERATURE_TOPIC": demo_run.temperature_topic,
        "MAX_TOPIC": demo_run.max_topic,
        "DEMO_STATE_DIR": str(demo_run.state_dir),
        "PLOT_PATH": str(plot),
    }


def test_explore_results_notebook_checks_pass(
    demo_run: DemoRun, kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert demo_run.returncode == 0, demo_run.output
    plot = tmp_path / "plot.png"
    nb = _execute("explore_results.ipynb", _demo_env(demo_run, kafka_bootstrap, plot), monkeypatch)
    printed = _printed(nb)
    assert "emitted windows match the raw readings" in printed
    assert "Kafka temperature == accepted log" in printed
    assert plot.stat().st_size > 10_000
    assert _inline_images(nb) >= 1


def test_explore_results_without_an_accepted_log_uses_kafka(
    demo_run: DemoRun, kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the compose deployment leaves: topics, no accepted log."""
    assert demo_run.returncode == 0, demo_run.output
    env = {**_demo_env(demo_run, kafka_bootstrap, tmp_path / "plot.png"), "ACCEPTED_LOG": str(tmp_path / "absent.jsonl")}
    nb = _execute("explore_results.ipynb", env, monkeypatch)
    printed = _printed(nb)
    assert "no accepted log: Kafka temperature is the reference" in printed
    assert "emitted windows match the raw readings" in printed
    assert _inline_images(nb) >= 1


def test_readings_with_spark_notebook_checks_pass(
    demo_run: DemoRun, amqp_url: str, kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    assert demo_run.returncode == 0, demo_run.output
    # A deployment where results and some readings still wait on the broker (nobody consumed them yet).
    max_address, temperature_address = unique_name("max"), unique_name("temperature")
    results = read_topic(kafka_bootstrap, demo_run.max_topic)
    waiting = read_topic(kafka_bootstrap, demo_run.temperature_topic)[:50]
    amqp_clients.send(amqp_url, max_address, [Message(body=v, content_type="application/json", durable=True) for v in results])
    amqp_clients.send(
        amqp_url, temperature_address, [Message(body=v, content_type="application/json", durable=True) for v in waiting]
    )
    plot = tmp_path / "devices.png"
    env = {
        **_demo_env(demo_run, kafka_bootstrap, plot), "AMQP_URL": amqp_url,
        "MAX_ADDRESS": max_address, "TEMPERATURE_ADDRESS": temperature_address,
    }  # fmt: skip
    nb = _execute("readings_with_spark.ipynb", env, monkeypatch)
    printed = _printed(nb)
    assert f"waiting on AMQP: {len(results)} window results" in printed
    assert f"{len(waiting)} readings on" in printed
    assert "everything waiting on AMQP is in Kafka too, and browsing left it there" in printed
    assert "the maximum is the largest reading of the window" in printed
    assert _inline_images(nb) >= 1 and plot.stat().st_size > 10_000
    assert len(amqp_clients.receive(amqp_url, max_address, len(results), timeout=30)) == len(results)  # browse took nothing
