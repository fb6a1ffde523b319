"""``notebooks/explore_results.ipynb`` executed against the services and the demo's output; its own asserts must pass."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.demo.demo_run import REPO_ROOT, DemoRun

pytestmark = pytest.mark.integration

NOTEBOOK = REPO_ROOT / "notebooks" / "explore_results.ipynb"


def test_explore_results_notebook_checks_pass(
    demo_run: DemoRun, kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    assert demo_run.returncode == 0, demo_run.output
    plot = tmp_path / "plot.png"
    # The kernel inherits this environment: the notebook's parameters.
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("TEMPERATURE_TOPIC", demo_run.temperature_topic)
    monkeypatch.setenv("MAX_TOPIC", demo_run.max_topic)
    monkeypatch.setenv("DEMO_STATE_DIR", str(demo_run.state_dir))
    monkeypatch.setenv("PLOT_PATH", str(plot))
    # Kernel "python3" from this venv first (ipykernel installs its spec there; jupyter_client
    # runs its "python" with this interpreter), ahead of any user-level spec of that name.
    paths = [str(Path(sys.prefix) / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")]
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(p for p in paths if p))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()  # raises CellExecutionError if any cell (and so any of its asserts) fails
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "emitted windows match the raw readings" in printed
    assert "Kafka temperature == accepted log" in printed
    assert plot.stat().st_size > 10_000
