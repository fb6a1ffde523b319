"""At-least-once offset tracking for records sent to AMQP peers: pure, single-threaded.

The AMQP peer may settle deliveries in any order. Kafka's committed offset means "every
record below this one is done", so a partition's commit position is the lowest offset
still outstanding (sent or about to be redelivered, not yet accepted), or one past the
highest accepted offset when nothing is outstanding. Committing anything higher could lose
an unaccepted record on a restart; committing lower only replays.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Partition:
    outstanding: deque[int] = field(default_factory=deque)  # in send order, ascending
    done: set[int] = field(default_factory=set)  # settled offsets still above the lowest outstanding one
    next_commit: int | None = None  # last position handed out by ``committable``
    high: int | None = None  # one past the highest offset seen


class OffsetTracker:
    """Which offset of each partition may be committed, given out-of-order settlement.

    Contract: call ``track`` for every record in the order it was consumed (ascending offset
    per partition), and ``done`` once per tracked offset when the record needs no further
    delivery (accepted, or dead-lettered and acknowledged by Kafka). A redelivered record
    stays tracked: do not call ``track`` again for it.
    """

    def __init__(self) -> None:
        self._parts: dict[int, _Partition] = {}

    def track(self, partition: int, offset: int) -> None:
        part = self._parts.setdefault(partition, _Partition())
        if part.high is not None and offset < part.high:
            raise ValueError(f"offset {offset} of partition {partition} tracked out of order (next is {part.high})")
        part.outstanding.append(offset)
        part.high = offset + 1

    def done(self, partition: int, offset: int) -> None:
        part = self._parts.get(partition)
        if part is None:
            return  # partition forgotten after a revoke: the late settlement no longer counts
        part.done.add(offset)
        queue = part.outstanding
        while queue and queue[0] in part.done:
            part.done.discard(queue.popleft())

    def position(self, partition: int) -> int | None:
        """The offset to commit for ``partition`` now (lowest outstanding, else one past the highest), or None."""
        part = self._parts.get(partition)
        if part is None or part.high is None:
            return None
        return part.outstanding[0] if part.outstanding else part.high

    def committable(self) -> dict[int, int]:
        """Partitions whose commit position moved since the last call, with the new position."""
        moved: dict[int, int] = {}
        for partition, part in self._parts.items():
            pos = self.position(partition)
            if pos is not None and pos != part.next_commit:
                part.next_commit = pos
                moved[partition] = pos
        return moved

    def outstanding(self) -> int:
        return sum(len(p.outstanding) for p in self._parts.values())

    def forget(self, partition: int) -> None:
        """Drop a partition (revoked in a rebalance): its late settlements are ignored."""
        self._parts.pop(partition, None)

    def partitions(self) -> list[int]:
        return list(self._parts)
