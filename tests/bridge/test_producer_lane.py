"""The native produce lane (``amqp_kafka_bridge.producer_lane`` over ``_lane.c``), against the real Kafka.

The lane is what the bridge produces through by default, so every bridge test runs over it;
these check what is its own: the slots links produce into, the Python tokens (dead letters),
its refusals, and that a record Kafka refuses at report time comes back to the link, for the
lane and for the Python producer the bridge falls back to.
"""

from __future__ import annotations

import threading
import time

import pytest
from amqp_kafka_bridge import producer_lane
from amqp_kafka_bridge.converters import KafkaRecord
from amqp_kafka_bridge.producer_lane import LanePump
from confluent_kafka import KafkaError, KafkaException
from proton import Message, symbol

from tests.bridge.clients import send
from tests.bridge.helpers import consume

pytestmark = pytest.mark.integration

BOUNDS = (0.001, 0.01, 0.1, 1.0, float("inf"))


@pytest.fixture
def lane_module():
    module = producer_lane.load()
    assert module is not None, f"the native lane is not built here: {producer_lane._why_not}"  # noqa: SLF001
    return module


@pytest.fixture
def pump(lane_module, kafka_bootstrap):
    reported = threading.Event()
    config = {"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 0}
    made = LanePump(lane_module, config, reported.set, BOUNDS)
    made.reported = reported  # type: ignore[attr-defined]
    made.start()
    yield made
    made.close(5)


def _settle_until(pump: LanePump, wanted: int, timeout: float = 30.0):
    """Everything ``settle`` returned until ``wanted`` reports (counted as done, tokens and failures) came back."""
    acks, counts, failures = [], [], []
    deadline = time.monotonic() + timeout
    while sum(c.done for _link, c in counts) + len(acks) < wanted:
        assert time.monotonic() < deadline, f"only {len(acks)} token reports and {counts} after {timeout} s"
        pump.reported.wait(0.5)  # type: ignore[attr-defined] - the poll thread's on_reports
        pump.reported.clear()  # type: ignore[attr-defined]
        a, c, f = pump.settle()
        acks += a
        counts += c
        failures += f
    return acks, counts, failures


def test_a_slots_reports_come_back_as_counts_and_its_records_reach_kafka(pump, kafka_bootstrap, unique_name):
    topic = unique_name("lane")
    link = object()
    slot = pump.open_slot(link)
    for i in range(500):  # pre-settled deliveries (no proton delivery: address 0): counted, credit owed
        pump.lane.produce(slot, topic, b"v%d" % i, b"k", -1, 0, (("h", b"1"),) if i == 0 else None, 0, 2 + len(str(i)), None)
    acks, counts, failures = _settle_until(pump, 500)
    assert acks == [] and failures == []
    assert {id(c[0]) for c in counts} == {id(link)}
    assert sum(c.done for _l, c in counts) == 500 and sum(c.acked for _l, c in counts) == 500
    assert sum(c.owed for _l, c in counts) == 500
    assert sum(c.bytes for _l, c in counts) == sum(2 + len(str(i)) for i in range(500))
    assert sum(sum(c.buckets) for _l, c in counts) == 500 and sum(c.latency_sum for _l, c in counts) > 0
    records = consume(kafka_bootstrap, topic, 500)
    assert [r.value() for r in records] == [b"v%d" % i for i in range(500)]  # in order, each once
    assert records[0].headers() == [("h", b"1")] and records[0].key() == b"k"


def test_a_closed_slot_is_freed_with_its_last_report_and_only_then_handed_out_again(pump, unique_name):
    topic = unique_name("lane-slot")
    first, second = object(), object()
    slot = pump.open_slot(first)
    for _ in range(50):
        pump.lane.produce(slot, topic, b"x", None, -1, 0, None, 0, 1, None)
    pump.close_slot(slot)  # closed with 50 in flight: not free yet
    other = pump.open_slot(second)
    assert other != slot
    _acks, counts, _failures = _settle_until(pump, 50)
    assert all(link is first for link, _c in counts)
    assert sum(c.owed for _l, c in counts) == 0  # a closed link owes no credit
    assert sum(c.acked for _l, c in counts) == 50  # but what Kafka took is still counted
    assert slot not in pump.links and pump.links[other] is second
    assert pump.open_slot(object()) == slot  # free now


def test_python_tokens_come_back_as_acks(pump, unique_name):
    tokens, topic = [object() for _ in range(3)], unique_name("lane-token")
    for token in tokens:
        pump.produce(KafkaRecord(topic, b"dead letter", headers=(("why", b"rejected"),)), token)
    acks, counts, failures = _settle_until(pump, 3)
    assert [a.token for a in acks] == tokens and all(a.error is None for a in acks)
    assert counts == [] and failures == []


def test_a_burst_is_produced_in_one_call_and_its_refusals_come_back_in_order(pump, kafka_bootstrap, unique_name):
    topic, link = unique_name("lane-burst"), object()
    slot = pump.open_slot(link)
    queued = [(KafkaRecord(topic, b"r%d" % i, b"k", None, None, (), None), 0, 2, 0.0) for i in range(10)]
    queued[3] = (KafkaRecord(topic, b"x" * 2_000_000), 0, 2_000_000, 0.0)  # past message.max.bytes
    queued[7] = (KafkaRecord(topic, b"r7", None, None, None, (("h", b"v"),), 1_700_000_000_000), 0, 2, 0.0)
    refused = pump.lane.produce_queued(slot, queued)
    assert [type(exc) for _address, exc in refused] == [KafkaException]
    assert refused[0][1].args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    _acks, counts, _failures = _settle_until(pump, 9)
    assert sum(c.acked for _l, c in counts) == 9
    records = consume(kafka_bootstrap, topic, 9)
    assert [r.value() for r in records] == [b"r%d" % i for i in range(10) if i != 3]  # in order, each once
    assert records[6].headers() == [("h", b"v")] and records[6].timestamp()[1] == 1_700_000_000_000


def test_a_renewed_producer_takes_over_and_the_old_ones_records_come_back(pump, kafka_bootstrap, unique_name):
    """What the poll thread does after a fatal error: a new producer; what the old one still held is reported."""
    topic, link = unique_name("lane-renew"), object()
    slot = pump.open_slot(link)
    for i in range(200):
        pump.lane.produce(slot, topic, b"a%d" % i, None, -1, 0, None, 0, 1, None)
    pump.lane.renew()  # purges the old producer: its records are acknowledged or come back as failures
    for i in range(100):
        pump.lane.produce(slot, topic, b"b%d" % i, None, -1, 0, None, 0, 1, None)
    _acks, counts, failures = _settle_until(pump, 300)
    acked = sum(c.acked for _l, c in counts)
    assert acked + len(failures) == 300 and all(link_ is link for link_, _dlv, _e in failures)
    assert pump.reachable(5.0)
    assert pump.lane.fatal is False
    values = [r.value() for r in consume(kafka_bootstrap, topic, acked)]
    assert [v for v in values if v.startswith(b"b")] == [b"b%d" % i for i in range(100)]  # the new producer's, in order
    with pytest.raises(ValueError, match="not 0"):
        lane_module_serve = producer_lane.load().serve
        lane_module_serve(0, {})


def test_refusals_raise_what_the_python_producer_raises(pump, lane_module, kafka_bootstrap):
    slot = pump.open_slot(object())
    with pytest.raises(KafkaException) as refused:
        pump.lane.produce(slot, "t", b"x" * 2_000_000, None, -1, 0, None, 0, 1, None)  # past message.max.bytes
    assert refused.value.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    with pytest.raises(ValueError, match="no open slot"):
        pump.lane.produce(99, "t", b"x", None, -1, 0, None, 0, 1, None)
    with pytest.raises(ValueError, match="acks"):
        lane_module.Lane({"bootstrap.servers": kafka_bootstrap, "acks": "sometimes"}, BOUNDS, KafkaException)


@pytest.mark.parametrize("native_lane", [True, False], ids=["native-lane", "python-producer"])
def test_a_partition_the_topic_lacks_is_rejected_and_the_link_goes_on(start_bridge, kafka_bootstrap, unique_name, native_lane):
    bridge = start_bridge(native_lane=native_lane)
    assert isinstance(bridge.core.producer, LanePump) == native_lane
    topic = unique_name("lane-partition")
    messages = [
        Message(body=b"first", inferred=True),
        Message(body=b"nowhere", inferred=True, annotations={symbol("x-opt-bridge.partition"): 7}),
        Message(body=b"last", inferred=True),
    ]
    result = send(bridge.url, topic, messages)
    assert result.outcomes == ["accepted", "rejected", "accepted"]
    assert result.conditions[1].startswith("amqp:invalid-field") and "no such partition" in result.conditions[1]
    assert [r.value() for r in consume(kafka_bootstrap, topic, 2)] == [b"first", b"last"]
    assert bridge.core.waiting_for_kafka() == 0
