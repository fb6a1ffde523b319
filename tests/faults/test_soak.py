"""Load: a bounded soak at a high rate; memory and open fds of the loaded processes stay flat.

60 s of load (plus start-up and drain) through the amqp source's ingest receivers and the
bridge, driven by ``bench.soak`` (``make bench`` runs the same soak for longer). Rates are
printed, never asserted; the flatness rule is ``bench.soak.flatness``, shared with the bench.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import MB, MIN_SAMPLES, Sample, flatness, run

SECONDS = 60.0
SEGMENT_BYTES = 4 * MB


def _series(rss_mb: list[float], fds: list[int]) -> list[Sample]:
    return [Sample(float(i), int(r * MB), f) for i, (r, f) in enumerate(zip(rss_mb, fds, strict=True))]


@pytest.mark.unit
def test_flatness_rule() -> None:
    n = 50
    noisy = [100 + (3 if i % 2 else -3) for i in range(n)]
    assert flatness(_series(noisy, [20] * n)).flat
    # Warm-up growth is forgiven; a steady climb after it is not.
    assert flatness(_series([40 + i for i in range(10)] + [60.0] * 40, [20] * n)).flat
    climbing = flatness(_series([100 + i for i in range(n)], [20] * n))
    assert not climbing.flat and "RSS grew" in climbing.reason
    # 16 MB of growth is allowed below 160 MB, 10 % above it; a drop is no leak.
    assert flatness(_series([100.0] * 20 + [115.0] * 30, [20] * n)).flat
    assert not flatness(_series([100.0] * 20 + [118.0] * 30, [20] * n)).flat
    assert flatness(_series([400.0] * 20 + [438.0] * 30, [20] * n)).flat
    assert flatness(_series([100.0] * 20 + [60.0] * 30, [20] * n)).flat
    # One fd leaked every few seconds shows; a socket or segment opened now and then does not.
    assert not flatness(_series([100.0] * n, [20 + i // 5 for i in range(n)])).flat
    assert flatness(_series([100.0] * n, [20 + (i % 3) for i in range(n)])).flat
    assert not flatness(_series([100.0] * MIN_SAMPLES, [20] * MIN_SAMPLES)).flat  # too short after the warm-up


@pytest.mark.integration
def test_soak_memory_and_fds_stay_flat_and_every_message_arrives(amqp_url: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    result = run(amqp_url, kafka_bootstrap, SECONDS, tmp_path, receivers=2, segment_bytes=SEGMENT_BYTES, progress=print)
    print(result.report())
    assert not result.aborted, f"the soak stopped early {result.aborted}"

    for side in (result.ingest, result.bridge):
        assert side.sent > 0, f"{side.name}: nothing sent"
        assert side.failed == 0 and side.errors == 0, f"{side.name}: {side.failed} not accepted, {side.errors} connection errors"
        assert side.accepted == side.sent, f"{side.name}: {side.sent - side.accepted} sent but not settled"
    # Every accepted message is in the ingest log exactly once, and in the Kafka topic.
    assert result.ingest.duplicates == 0, result.ingest.notes
    assert result.ingest.arrived == result.ingest.accepted, result.ingest.notes
    assert result.bridge.arrived == result.bridge.accepted
    assert result.bridge.connections >= 20  # the bridge saw connection churn as well as one long link

    # The query kept up: the log stayed within a few segments per receiver instead of growing.
    assert result.log_bytes_max <= 3 * SEGMENT_BYTES * result.receivers

    for name, verdict in result.flatness.items():
        assert verdict.samples >= SECONDS * 0.8 / 2, f"{name}: only {verdict.samples} samples"
        assert verdict.flat, f"{name}: {verdict.describe()}"
