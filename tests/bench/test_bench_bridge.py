"""The bridge benchmark in miniature: its measurements run, its JSON holds what the README quotes, and its
baselines are fair (``make bench`` is not in CI, so this keeps the benchmark from rotting unseen)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import bench_bridge
from bench.common import cpu_cgroup
from tests.bridge.clients import receive
from tests.bridge.helpers import produce

pytestmark = pytest.mark.integration


@pytest.fixture
def other_bridge(kafka_bootstrap: str):
    """A second bridge the benchmark does not start, as the Strimzi bridge is in a side-by-side run."""
    proc, amqp_port, _ = bench_bridge.start_bridge(kafka_bootstrap)
    yield f"amqp://127.0.0.1:{amqp_port}", proc.pid
    bench_bridge.stop(proc)


def test_interleaved_run_with_another_bridge_writes_every_figure_and_ratio(kafka_bootstrap, other_bridge, tmp_path: Path):
    url, pid = other_bridge
    out = tmp_path / "bench.json"
    argv = ["--messages", "300", "--interleave", "1", "--kafka-bootstrap", kafka_bootstrap, "--json", str(out)]
    assert bench_bridge.main([*argv, "--other-bridge-url", url, "--other-bridge-pid", str(pid)]) == 0
    figures = json.loads(out.read_text())["figures"]
    for side in ("bridge", "other"):
        assert figures[f"ilv_{side}_in"]["value"] > 0 and figures[f"ilv_{side}_out"]["value"] > 0
        assert 0 < figures[f"ilv_{side}_p50"]["value"] < 1000  # ms, one message in flight
        assert figures[f"ilv_{side}_in_lean"]["value"] > 0
    for ratio in ("in", "in_lean", "p50", "out", "other_in", "other_in_lean", "other_p50", "other_out"):
        assert figures[f"ilv_{ratio}_ratio"]["value"] > 0
    # one round: the ratio is exactly this round's bridge figure over the raw loop's
    ilv = {k: v["value"] for k, v in figures.items()}
    assert ilv["ilv_in_ratio"] == pytest.approx(ilv["ilv_bridge_in"] / ilv["ilv_raw_receive"])
    assert ilv["ilv_other_out_ratio"] == pytest.approx(ilv["ilv_other_out"] / ilv["ilv_raw_send"])
    assert ilv["ilv_in_lean_vs_other_ratio"] == pytest.approx(ilv["ilv_bridge_in_lean"] / ilv["ilv_other_in_lean"])


def test_the_lean_sender_gets_each_message_accepted_once_and_in_order(kafka_bootstrap, start_bridge, unique_name):
    """The lean sender's rate counts only what the bridge accepted, so each of its messages is in Kafka once."""
    from bench.lean_sender import lean_send
    from tests.bridge.helpers import consume

    bridge = start_bridge()
    topic = unique_name("lean")
    sender = lean_send(bridge.url, topic, 3000, 40)
    assert sender.settled == sender.sent == 3000 and sender.t1 > sender.t0
    records = consume(kafka_bootstrap, topic, 3000)
    assert len(records) == 3000 and {r.value() for r in records} == {b"x" * 40}
    assert bridge.core.waiting_for_kafka() == 0


def test_the_lean_sender_fails_loudly_when_a_message_is_not_accepted(start_bridge, unique_name):
    from bench.lean_sender import lean_send

    bridge = start_bridge(max_message_bytes=100)  # a 500-byte body is rejected
    with pytest.raises(RuntimeError, match="outcome"):
        lean_send(bridge.url, unique_name("lean-refused"), 10, 500)


def test_the_raw_send_loop_sends_what_a_bridge_sends(kafka_bootstrap, start_bridge, unique_name):
    """The Kafka -> AMQP baseline decodes as much as the bridge's output: same sections, same annotation keys."""
    bridge = start_bridge()
    topic = unique_name("shape")
    produce(kafka_bootstrap, topic, [{"value": b"x" * 100}])
    from_bridge = receive(bridge.url, f"{topic}/group.id/g", 1).messages[0]

    port = bench_bridge.free_port()
    source = bench_bridge.in_own_process(  # as the benchmark runs it
        f"from bench.bench_bridge import RawSource; from proton.reactor import Container; "
        f"Container(RawSource('amqp://127.0.0.1:{port}', 1, 100)).run()"
    )
    try:
        bench_bridge.wait_port(port, source)
        from_raw = receive(f"amqp://127.0.0.1:{port}", topic, 1).messages[0]
    finally:
        bench_bridge.stop(source)
    assert set(from_raw.annotations) == set(from_bridge.annotations)
    assert bytes(from_raw.body) == bytes(from_bridge.body)
    assert from_raw.inferred == from_bridge.inferred  # both data sections


@pytest.mark.skipif(cpu_cgroup() is None, reason="no cgroup cpu controller on this machine")
def test_worker_scaling_with_capped_workers_records_the_split(kafka_bootstrap, tmp_path: Path):
    out = tmp_path / "workers.json"
    argv = ["--messages", "400", "--workers-only", "--workers-cpu-cap", "0.3", "--kafka-bootstrap", kafka_bootstrap]
    assert bench_bridge.main([*argv, "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    figures, ratios = results["figures"], results["ratios"]
    for tag in ("", "_cap0.3"):
        assert figures[f"bridge_in_4senders_1worker{tag}"]["value"] > 0
        assert 0.5 <= figures[f"bridge_in_4senders_2worker{tag}_busiest_share"]["value"] <= 1.0
        assert ratios[f"workers2_vs_workers1{tag}"]["target"] == 1.6
