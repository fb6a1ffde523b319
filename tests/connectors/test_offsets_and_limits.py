"""Unit tests: the offset type, the trigger-delay rule, the new options and the annotations column."""

from __future__ import annotations

import pytest
from proton import Message, symbol, ulong
from pyspark_amqp.conversion import ANNOTATIONS_COLUMN, annotations_of, arrow_schema, records_to_arrow, source_schema_ddl
from pyspark_amqp.offsets import AmqpSourceOffset, LogPartition
from pyspark_amqp.options import AmqpOptionError, parse_source_options
from pyspark_amqp.source import TriggerDelay

pytestmark = pytest.mark.unit

BASE = {"url": "amqp://127.0.0.1:5672", "address": "temperature", "logDir": "/tmp/x"}


def test_offset_round_trips_through_spark_json_even_with_hash_in_the_address() -> None:
    offset = AmqpSourceOffset({LogPartition("orders#eu", 1): 42, LogPartition("a", 0): 7})
    as_json = offset.to_json()
    assert as_json == {"a#0": 7, "orders#eu#1": 42}
    assert AmqpSourceOffset.from_json(as_json) == offset
    assert offset.total_after(AmqpSourceOffset({LogPartition("a", 0): 5})) == 2 + 0  # a partition new to start counts nothing


@pytest.mark.parametrize("key", ["no-index", "a#", "#3", "a#x"])
def test_a_key_that_is_not_an_offset_key_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="not an amqp source offset key"):
        LogPartition.parse(key)


def test_log_folders_are_distinct_for_similar_addresses(tmp_path) -> None:
    assert LogPartition("a/b", 0).folder(tmp_path) != LogPartition("a_b", 0).folder(tmp_path)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_trigger_delay_holds_small_batches_until_the_delay_passes_like_kafka() -> None:
    clock = _Clock()
    delay = TriggerDelay(3.0, clock)
    assert not delay.hold_back(10, 500)  # the first batch is never held back
    clock.now += 1
    assert delay.hold_back(300, 500)  # too few, too early
    assert not delay.hold_back(500, 500)  # enough: goes, and restarts the delay
    clock.now += 2.9
    assert delay.hold_back(499, 500)
    clock.now += 0.1
    assert not delay.hold_back(1, 500)  # 3 s since the last batch: whatever there is goes


def test_trigger_bound_options() -> None:
    opts = parse_source_options({**BASE, "minMessagesPerTrigger": "500", "maxTriggerDelay": "3 seconds"}, "stream")
    assert (opts.min_messages_per_trigger, opts.max_trigger_delay_s) == (500, 3.0)
    assert parse_source_options({**BASE, "maxTriggerDelay": "15m"}).max_trigger_delay_s == 900.0
    assert parse_source_options({**BASE, "maxTriggerDelay": "250"}).max_trigger_delay_s == 0.25  # bare number: ms, as in Spark
    with pytest.raises(AmqpOptionError, match="'maxtriggerdelay' must be a duration"):
        parse_source_options({**BASE, "maxTriggerDelay": "soon"})


def test_batch_and_stream_options_are_not_mixed_up() -> None:
    with pytest.raises(AmqpOptionError, match="mode apply to batch reads"):
        parse_source_options({**BASE, "mode": "browse"}, "stream")
    with pytest.raises(AmqpOptionError, match="maxmessagespertrigger apply to streams.*maxMessages and timeout"):
        parse_source_options({**BASE, "maxMessagesPerTrigger": "5"}, "batch")
    with pytest.raises(AmqpOptionError, match="'mode' must be one of consume, browse"):
        parse_source_options({**BASE, "mode": "peek"}, "batch")
    browse = parse_source_options({"url": BASE["url"], "address": "a", "mode": "browse"}, "batch")  # no logDir needed
    assert browse.browse and browse.log_dir.exists()
    with pytest.raises(AmqpOptionError, match="option 'logDir' is required"):
        parse_source_options({"url": BASE["url"], "address": "a"}, "batch")
    with pytest.raises(AmqpOptionError, match="'selector' is empty"):
        parse_source_options({**BASE, "selector": " "})


def test_annotations_column_only_when_asked_for() -> None:
    assert ANNOTATIONS_COLUMN not in source_schema_ddl() and ANNOTATIONS_COLUMN not in arrow_schema().names
    assert source_schema_ddl(True).endswith("message_annotations MAP<STRING, STRING>")
    message = Message(
        body=b"x", annotations={symbol("x-opt-bridge.topic"): "t", symbol("x-opt-bridge.offset"): 42, ulong(7): True}
    )
    payload = message.encode()
    assert dict(annotations_of(payload)) == {"x-opt-bridge.topic": "t", "x-opt-bridge.offset": "42", "7": "true"}
    assert annotations_of(Message(body=b"x").encode()) is None
    batch = records_to_arrow([(0, 1, payload)], "a", 0, include_annotations=True)
    assert batch.schema.names[-1] == ANNOTATIONS_COLUMN
    assert dict(batch.column(ANNOTATIONS_COLUMN)[0].as_py())["x-opt-bridge.offset"] == "42"
    assert records_to_arrow([(0, 1, payload)], "a", 0).schema == arrow_schema()
