"""Receiver-link source filters: which ones the bridge understands, what they mean, and which it echoes back.

Two spellings are accepted:

- ``x-opt-bridge.partition-filter[:int]`` and ``x-opt-bridge.offset-filter[:long]``: this
  bridge's own; any non-negative integer type (plain or described); errors are
  ``amqp:invalid-field``.
- ``io.strimzi:partition-filter:int`` and ``io.strimzi:offset-filter:long``: the Strimzi
  AMQP bridge's, with its rules: the partition must be an AMQP ``int`` and the offset an
  AMQP ``long`` (else ``io.strimzi:wrong-partition-filter`` / ``io.strimzi:wrong-offset-filter``),
  an offset needs a partition (``io.strimzi:no-partition-filter``), and a negative value is
  ``io.strimzi:wrong-filter``.

A filter the bridge does not know is refused (``amqp:not-implemented``) rather than ignored:
a client that believes its filter applies would otherwise silently read every record. The
attach echoes back exactly the filters applied (AMQP 1.0 section 3.5.8: the source's filter
set in the attach says what the sending side honours), with the values as the client sent them.
Pure functions, no proton state: the endpoint calls ``parse_filters`` at attach time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proton import Described, int32

from amqp_kafka_bridge.errors import INVALID_FIELD, AmqpConditionError

BRIDGE_PARTITION = ("x-opt-bridge.partition-filter:int", "x-opt-bridge.partition-filter")
BRIDGE_OFFSET = ("x-opt-bridge.offset-filter:long", "x-opt-bridge.offset-filter")
STRIMZI_PARTITION = "io.strimzi:partition-filter:int"
STRIMZI_OFFSET = "io.strimzi:offset-filter:long"
KNOWN = frozenset((*BRIDGE_PARTITION, *BRIDGE_OFFSET, STRIMZI_PARTITION, STRIMZI_OFFSET))

WRONG_PARTITION_FILTER = "io.strimzi:wrong-partition-filter"
WRONG_OFFSET_FILTER = "io.strimzi:wrong-offset-filter"
NO_PARTITION_FILTER = "io.strimzi:no-partition-filter"
WRONG_FILTER = "io.strimzi:wrong-filter"


class FilterError(AmqpConditionError):
    """A filter set the bridge cannot honour; ``condition`` is the AMQP error the link is detached with."""


@dataclass(frozen=True)
class AppliedFilters:
    """What the filters select (``partition``/``offset``, None for all/committed) and the entries to echo back."""

    partition: int | None = None
    offset: int | None = None
    echo: dict[Any, Any] = field(default_factory=dict)


def _bridge_value(name: str, value: Any) -> int:
    raw = value.value if isinstance(value, Described) else value
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise FilterError(INVALID_FIELD, f"filter {name} must be a non-negative integer, not {raw!r}")
    return int(raw)


def _strimzi_value(name: str, value: Any, amqp_type: type, wrong: str, type_name: str) -> int:
    # proton decodes AMQP int as ``int32`` and AMQP long as plain ``int``; every other integer
    # type (uint, ulong, short, ...) is its own subclass, which Strimzi refused as well.
    if type(value) is not amqp_type:
        raise FilterError(wrong, f"filter {name} must be an AMQP {type_name}, not {value!r}")
    if value < 0:
        raise FilterError(WRONG_FILTER, f"filter {name} must not be negative ({value})")
    return int(value)


def _one(filters: dict[str, Any], names: tuple[str, ...], what: str) -> str | None:
    present = [name for name in names if name in filters]
    if len(present) > 1:
        raise FilterError(INVALID_FIELD, f"more than one {what} filter: {', '.join(present)}; give one")
    return present[0] if present else None


def parse_filters(filters: dict[Any, Any] | None) -> AppliedFilters:
    """The source filter map of a receiver's attach -> what to consume and what to echo. Raises ``FilterError``."""
    if not filters:
        return AppliedFilters()
    by_name = {str(key): value for key, value in filters.items()}
    unknown = sorted(name for name in by_name if name not in KNOWN)
    if unknown:
        raise FilterError(
            "amqp:not-implemented",
            f"unknown source filter {', '.join(unknown)}; this bridge applies "
            f"{STRIMZI_PARTITION}, {STRIMZI_OFFSET}, {BRIDGE_PARTITION[0]} and {BRIDGE_OFFSET[0]}",
        )
    partition_name = _one(by_name, (*BRIDGE_PARTITION, STRIMZI_PARTITION), "partition")
    offset_name = _one(by_name, (*BRIDGE_OFFSET, STRIMZI_OFFSET), "offset")
    partition = offset = None
    if partition_name == STRIMZI_PARTITION:
        partition = _strimzi_value(partition_name, by_name[partition_name], int32, WRONG_PARTITION_FILTER, "int")
    elif partition_name is not None:
        partition = _bridge_value(partition_name, by_name[partition_name])
    if offset_name == STRIMZI_OFFSET:
        offset = _strimzi_value(offset_name, by_name[offset_name], int, WRONG_OFFSET_FILTER, "long")
    elif offset_name is not None:
        offset = _bridge_value(offset_name, by_name[offset_name])
    if offset is not None and partition is None:
        if offset_name == STRIMZI_OFFSET:
            raise FilterError(NO_PARTITION_FILTER, f"filter {offset_name} needs a partition filter ({STRIMZI_PARTITION})")
        raise FilterError(INVALID_FIELD, "an offset filter needs a partition filter")
    echo = {key: value for key, value in filters.items() if str(key) in (partition_name, offset_name)}
    return AppliedFilters(partition, offset, echo)
