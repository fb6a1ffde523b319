"""``python -m demo`` end to end: every emitted window against a recomputation from the accepted readings.

The demo runs for a bounded time with a fixed seed on the session's services; the
readings the simulator reports the broker accepted are the ground truth. On both sinks
(AMQP ``max`` through the result receiver, Kafka ``max``) every window must have the
recomputed max, device and count, and every window the final watermark closed must be
there. The bridge's Kafka ``temperature`` must hold exactly the accepted readings.
"""

from __future__ import annotations

import json
import re

import pytest

from simulators.feed import read_accepted_log
from tests.demo.demo_run import PUBLISH_SECONDS, WATERMARK_MS, WINDOW_MS, DemoRun, read_topic
from tests.jobs.oracle import expected_windows

pytestmark = pytest.mark.integration


def by_window(results: list[dict], sink: str) -> dict[str, dict]:
    """Results keyed by window start; a replayed duplicate must be identical."""
    out: dict[str, dict] = {}
    for r in results:
        first = out.setdefault(r["window_start"], r)
        assert first == r, f"{sink}: window {r['window_start']} emitted twice with different values"
    return out


def test_demo_windows_match_the_accepted_readings(demo_run: DemoRun, kafka_bootstrap: str) -> None:
    assert demo_run.returncode == 0, demo_run.output
    accepted = read_accepted_log(demo_run.accepted_log)
    assert len(accepted) >= PUBLISH_SECONDS * 100 * 0.9  # --rate 100 for --duration 30
    closed = expected_windows(accepted, WINDOW_MS, closed_before_ms=max(r.ts for r in accepted) - WATERMARK_MS)
    assert len(closed) >= 3
    want = {w["window_start"]: w for w in closed}

    amqp = by_window([json.loads(line) for line in demo_run.amqp_results.read_text().splitlines()], "AMQP")
    kafka = by_window([json.loads(v) for v in read_topic(kafka_bootstrap, demo_run.max_topic)], "Kafka")
    assert amqp == want
    assert kafka == want


def test_bridge_forwarded_every_accepted_reading(demo_run: DemoRun, kafka_bootstrap: str) -> None:
    assert demo_run.returncode == 0, demo_run.output
    accepted = {r.to_json() for r in read_accepted_log(demo_run.accepted_log)}
    forwarded = [v.decode() for v in read_topic(kafka_bootstrap, demo_run.temperature_topic)]
    assert set(forwarded) == accepted  # duplicates allowed (at-least-once), nothing missing, nothing else


def test_demo_prints_results_and_a_summary(demo_run: DemoRun) -> None:
    accepted = len(read_accepted_log(demo_run.accepted_log))
    windows = len({json.loads(line)["window_start"] for line in demo_run.amqp_results.read_text().splitlines()})
    out = demo_run.output
    assert "window_start" in out and "max_temperature" in out  # the live table's header
    assert re.search(rf"readings accepted by the broker\s+{accepted}\b", out), out
    assert re.search(rf"readings forwarded to Kafka\s+{accepted}\b", out), out
    assert re.search(rf"windows emitted on AMQP\s+{windows}\b", out), out
    assert re.search(rf"windows emitted on Kafka\s+{windows}\b", out), out
    assert "all closed windows on both sinks" in out
