"""Offset tracking: commit only below the lowest record not yet done, whatever order settlements arrive in."""

from __future__ import annotations

import pytest
from amqp_kafka_bridge.offsets import OffsetTracker
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.unit


def test_out_of_order_acks_hold_the_commit_at_the_gap():
    t = OffsetTracker()
    for offset in range(10, 15):
        t.track(0, offset)
    assert t.committable() == {0: 10}
    t.done(0, 12)
    t.done(0, 11)
    assert t.committable() == {}  # 10 still outstanding
    t.done(0, 10)
    assert t.committable() == {0: 13}
    t.done(0, 14)
    assert t.position(0) == 13
    t.done(0, 13)
    assert t.committable() == {0: 15}
    assert t.outstanding() == 0


def test_partitions_are_independent_and_forgettable():
    t = OffsetTracker()
    t.track(0, 0)
    t.track(1, 7)
    t.done(1, 7)
    assert t.committable() == {0: 0, 1: 8}
    t.forget(0)
    t.done(0, 0)  # late settlement after a revoke is ignored
    assert t.partitions() == [1]


def test_tracking_backwards_is_an_error():
    t = OffsetTracker()
    t.track(0, 5)
    with pytest.raises(ValueError):
        t.track(0, 5)


@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.permutations(range(n)), st.integers(0, n))))
def test_commit_never_passes_an_unsettled_offset(case):
    n, order, settled_count = case
    t = OffsetTracker()
    for offset in range(n):
        t.track(3, offset)
    settled = set(order[:settled_count])
    for offset in order[:settled_count]:
        t.done(3, offset)
        position = t.position(3)
        assert all(o in settled for o in range(position))  # everything below the commit is settled
    expected = next((o for o in range(n) if o not in settled), n)
    assert t.position(3) == expected
