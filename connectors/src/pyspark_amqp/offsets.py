"""The source's offsets: one position per log partition, like Spark's ``KafkaSourceOffset``.

Spark keeps offsets as JSON objects in the checkpoint; this module is the only place that
knows their shape: ``{"<address>#<receiver index>": <next log offset>}``. An address may
itself contain ``#``; the index after the last one is the receiver.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, order=True)
class LogPartition:
    """One receiver's log: the unit of parallelism, like a Kafka topic partition."""

    address: str
    index: int

    @property
    def key(self) -> str:
        """The partition's key in an offset's JSON."""
        return f"{self.address}#{self.index}"

    @classmethod
    def parse(cls, key: str) -> LogPartition:
        """The partition a key names; raises ``ValueError`` for a key that was not made by :attr:`key`."""
        address, sep, index = key.rpartition("#")
        if not sep or not address or not index.isdigit():
            raise ValueError(f"not an amqp source offset key (expected '<address>#<receiver>'): {key!r}")
        return cls(address, int(index))

    def folder(self, log_dir: Path) -> Path:
        # Addresses may hold any character; the folder name stays readable and unique.
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", self.address)[:80]
        digest = hashlib.sha1(self.address.encode()).hexdigest()[:8]
        return Path(log_dir) / f"{safe}-{digest}" / f"receiver-{self.index}"


@dataclass(frozen=True)
class AmqpSourceOffset:
    """Next log offset per partition: offsets below it are in a batch Spark has planned."""

    positions: Mapping[LogPartition, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Mapping[str, object]) -> AmqpSourceOffset:
        """From the dict Spark hands the reader (its checkpointed JSON)."""
        return cls({LogPartition.parse(k): int(v) for k, v in value.items()})  # type: ignore[call-overload]

    def to_json(self) -> dict[str, int]:
        """The dict Spark stores in its offset log (keys sorted so equal offsets serialise equally)."""
        return {p.key: int(n) for p, n in sorted(self.positions.items())}

    def get(self, partition: LogPartition, default: int) -> int:
        return int(self.positions.get(partition, default))

    def __iter__(self) -> Iterator[LogPartition]:
        return iter(self.positions)

    def __getitem__(self, partition: LogPartition) -> int:
        return int(self.positions[partition])

    def total_after(self, start: AmqpSourceOffset) -> int:
        """Records between ``start`` and this offset, summed over partitions."""
        return sum(max(0, n - start.get(p, n)) for p, n in self.positions.items())
