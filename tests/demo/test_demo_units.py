"""The demo's pieces that need no services: arguments, the routes file, closed windows, stopping children."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from demo.__main__ import parse_args
from demo.children import Child, find_descendant
from demo.commands import routes_yaml
from demo.kafka_tally import window_end_ms
from demo.run import Demo
from demo.settings import DemoSettings
from simulators.model import Reading

pytestmark = pytest.mark.unit


def test_arguments_become_settings(tmp_path: Path) -> None:
    s = parse_args(["--duration", "40", "--seed", "3", "--amqp-url", "amqp://h:1", "--kafka-bootstrap", "h:2",
                    "--temperature-address", "t1", "--state-dir", str(tmp_path)])  # fmt: skip
    assert (s.duration, s.seed, s.amqp_url, s.kafka_bootstrap) == (40.0, 3, "amqp://h:1", "h:2")
    assert s.spark_queue == "t1::t1.spark" and s.bridge_queue == "t1::t1.bridge"
    assert s.accepted_log == tmp_path / "accepted.jsonl"


def test_urls_go_together() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--amqp-url", "amqp://h:1"])


def test_routes_file_forwards_the_bridge_queue() -> None:
    routes = yaml.safe_load(routes_yaml(DemoSettings(temperature_address="t", temperature_topic="k")))["routes"]
    assert routes == [{"address": "t::t.bridge", "topic": "k", "direction": "to-kafka"}]


def test_closed_windows_are_those_the_final_watermark_passed() -> None:
    demo = Demo(DemoSettings(window_s=5, watermark_s=10))
    readings = [Reading("device-1", 20.0, ts) for ts in (1_000, 4_999, 5_000, 12_000, 26_000)]
    # watermark 16 000: windows ending at 5 000 and 10 000 are closed, [10 000, 15 000) is too; [25 000, 30 000) not
    assert demo._closed_ends(readings) == {5_000, 10_000, 15_000}


def test_window_end_of_a_result_body() -> None:
    body = '{"window_start": "2025-11-28T22:46:40.000Z", "window_end": "2025-11-28T22:46:45.000Z"}'
    assert window_end_ms(body) == 1_764_370_005_000


def test_stop_reaches_the_whole_process_group(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(kid.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    pids: list[int] = []
    printed = threading.Event()
    child = Child(
        "sleeper",
        [sys.executable, "-c", script],
        tmp_path / "sleeper.log",
        on_line=lambda line: (pids.append(int(line)), printed.set()),
    )
    assert printed.wait(30), "the child did not start its own child"
    assert child.stop(signal.SIGTERM, timeout=10) == -signal.SIGTERM
    assert not _alive_within(pids[0], 10), "the grandchild outlived stop()"
    assert str(pids[0]) in (tmp_path / "sleeper.log").read_text()


def _alive_within(pid: int, timeout: float) -> bool:
    """True if ``pid`` still exists (not a zombie) after ``timeout`` seconds of polling."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        if state == "Z":
            return False
        threading.Event().wait(0.05)
    return True


def test_find_descendant_matches_python_processes_by_argument(tmp_path: Path) -> None:
    script = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(30)', 'windowed_max.py'])"
    child = Child("tree", [sys.executable, "-c", script], tmp_path / "tree.log")
    try:
        found = None
        for _ in range(100):  # the grandchild appears within milliseconds; bounded poll on /proc, no fixed sleep
            found = find_descendant(child.pid, "windowed_max.py")
            if found:
                break
            child.wait(0.05)
        assert found is not None and found != child.pid
    finally:
        child.stop(signal.SIGTERM, timeout=10)


def test_job_progress_counts_batches_and_the_slowest_querys_rows() -> None:
    from demo.progress import JobProgress

    progress = JobProgress()
    assert progress.snapshot().last_batch_at is None
    assert "not finished its first micro-batch" in progress.snapshot().describe()
    assert not progress.on_line("26/12/02 WARN something else")
    assert not progress.on_line("progress {not json")
    assert progress.on_line('progress {"query": "amqp", "batch": 0, "input_rows": 120}')
    assert progress.on_line('2026 stderr prefix progress {"query": "kafka", "batch": 0, "input_rows": 80}')
    assert progress.on_line('progress {"query": "kafka", "batch": 1, "input_rows": 0}')  # a no-data batch still counts
    snap = progress.snapshot()
    assert (snap.batches, snap.rows_read) == (3, 80) and snap.last_batch_at is not None
    assert snap.describe() == "the job ran 3 micro-batches and read 80 readings"
