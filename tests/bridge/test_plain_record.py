"""The native lane's converter in C (``_plain_record.c``) against the Python one it stands in for.

For every input, ``_lane.plain_record`` gives either exactly the record ``RawConverter.to_record``
makes of ``read_plain``'s message (same topic, value, key, partition, headers in order, timestamp),
or None, and then the bridge converts the message in Python. None is allowed only where the C
side is documented to step aside (not of the plain shape, a conversion error, a section or a
property name twice, more than 64 properties); for the messages proton encodes of the plain
shape it must give the record itself, or the fast path would silently stop being fast.
"""

from __future__ import annotations

import time

import pytest
from amqp_kafka_bridge import producer_lane
from amqp_kafka_bridge.converters import ConversionError, converter_for
from amqp_message_model.decoding import read_plain
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from proton import Message, symbol, ulong

from tests.faults.hostile_corpus import build_corpus

pytestmark = pytest.mark.unit

TOPIC = "plain.topic"
KEY_PROPERTY = "device_id"
RAW = converter_for("raw")


@pytest.fixture(scope="module")
def lane():
    module = producer_lane.load()
    assert module is not None, f"the native lane is not built here: {producer_lane._why_not}"  # noqa: SLF001
    return module


def python_record(data: bytes, key_property: str | None) -> tuple | None:
    """What the bridge's Python path makes of ``data`` when it is of the plain shape and converts; else None."""
    message = read_plain(data)
    if message is None:
        return None
    try:
        return tuple(RAW.to_record(message, TOPIC, key_property))
    except ConversionError:
        return None


def agree(lane, data: bytes, key_property: str | None = KEY_PROPERTY) -> tuple[tuple | None, tuple | None]:
    """The C and the Python record of ``data``; fails if C gives a record that is not Python's."""
    in_c = lane.plain_record(data, TOPIC, key_property)
    in_python = python_record(data, key_property)
    assert in_c is None or in_c == in_python, (data, in_c, in_python)
    return in_c, in_python


def test_the_common_messages_are_converted_in_c_as_python_converts_them(lane):
    now = time.time()
    reading = Message(body=b'{"device_id":"d-1","temperature":21.5}', inferred=True, content_type="application/json",
                      properties={"device_id": "d-1"}, creation_time=now)  # fmt: skip
    cases = [
        reading,
        Message(body=b"x" * 300, inferred=True, durable=True, priority=7, ttl=5),
        Message(body="héllo wörld", subject="s", id="id-1", correlation_id="c-1", reply_to="r", address="to", user_id=b"u"),
        Message(body=b"b", inferred=True, properties={"a": 1, "b": 2.5, "c": True, "d": None, "e": b"\xff", "f": "é" * 300,
                                                      "g": -(2**40), "h": float("nan"), "i": float("-inf"), "j": 1e300}),
        Message(body=b"k", inferred=True, annotations={symbol("x-opt-bridge.key"): "key", symbol("x-opt-bridge.partition"): 0}),
        Message(body=b"k", inferred=True, annotations={symbol("x-opt-bridge.key"): b"\x00bin", "other": 5}),
        Message(body=b"k", inferred=True, properties={KEY_PROPERTY: 42}),
        Message(body=b"k", inferred=True, properties={KEY_PROPERTY: False}),
        Message(body=b"k", inferred=True, properties={KEY_PROPERTY: 0.1}),
        Message(body=b"k", inferred=True, properties={KEY_PROPERTY: None}),
        Message(body=b"k", inferred=True, content_type="None", subject=""),  # proton's absent content type; an empty subject
        Message(body=None),
        Message(body=b"", inferred=True, creation_time=-1.5),
        Message(body=b"future", inferred=True, creation_time=4_102_444_800.0),  # 2100: Kafka would refuse it, so no timestamp
    ]  # fmt: skip
    for message in cases:
        in_c, in_python = agree(lane, bytes(message.encode()))
        assert in_python is not None and in_c == in_python, message
    headers = dict(lane.plain_record(bytes(cases[3].encode()), TOPIC, KEY_PROPERTY)[5])
    assert (headers["b"], headers["c"], headers["d"], headers["h"], headers["i"]) == (b"2.5", b"true", b"", b"NaN", b"-inf")


def test_what_python_refuses_or_leaves_to_proton_is_left_to_python(lane):
    with_ulong_id = Message(body=b"x", inferred=True)
    with_ulong_id.id = ulong(5)
    left = [
        Message(body=b"x", inferred=True, annotations={symbol("x-opt-bridge.key"): 5}),  # ConversionError in Python
        Message(body=b"x", inferred=True, annotations={symbol("x-opt-bridge.partition"): "no"}),
        Message(body=b"x", inferred=True, annotations={symbol("x-opt-bridge.partition"): -1}),
        Message(body=b"x", inferred=True, annotations={symbol("x-opt-bridge.partition"): True}),
        with_ulong_id,
        Message(body={"a": 1}),
        Message(body=5),
        Message(body=symbol("s")),
        Message(body=[1, 2], inferred=True),
        Message(body=b"x", inferred=True, properties={"s": symbol("v")}),
    ]
    for message in left:
        data = bytes(message.encode())
        assert lane.plain_record(data, TOPIC, KEY_PROPERTY) is None, message
    # a property name twice (proton never encodes that): Python's dict keeps the first place and the last value
    twice = b"\x00\x53\x74\xc1\x0b\x04\xa1\x01a\x55\x01\xa1\x01a\x55\x02" + b"\x00\x53\x75\xa0\x01x"
    assert read_plain(twice) is not None
    assert lane.plain_record(twice, TOPIC, KEY_PROPERTY) is None
    # up to 64 application properties in C; more, in Python
    for count, in_c in ((64, True), (65, False)):
        data = bytes(Message(body=b"x", inferred=True, properties={f"p{i}": i for i in range(count)}).encode())
        assert (agree(lane, data)[0] is not None) == in_c


def test_every_hostile_input_gets_python_s_record_or_none(lane):
    converted = 0
    for case in build_corpus(start_ms=1_764_370_000_000):
        data = bytes(case.message.encode())
        in_c, _ = agree(lane, data)
        converted += in_c is not None
        for cut in (1, 2, 5, len(data) // 2):  # cut short: never read past the end
            agree(lane, data[:-cut])
    assert converted >= 10  # the valid readings among them went the fast way


def test_an_empty_key_property_keys_nothing_as_in_python(lane):
    data = bytes(Message(body=b"x", inferred=True, properties={"": "empty-name"}).encode())
    assert lane.plain_record(data, TOPIC, "")[2] is None
    assert lane.plain_record(data, TOPIC, None) == python_record(data, None)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=20),
)
_annotation_values = st.one_of(_scalars, st.text(st.characters(max_codepoint=127), max_size=5).map(symbol))
_bodies = st.one_of(
    st.none(),
    st.binary(max_size=300).map(lambda b: ("data", b)),
    st.text(max_size=50),
    st.binary(max_size=50),
    st.integers(min_value=-(2**31), max_value=2**31),
    st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2),
)


@st.composite
def messages(draw) -> bytes:
    body = draw(_bodies)
    message = Message(body=body[1], inferred=True) if isinstance(body, tuple) else Message(body=body)
    names = st.sampled_from([KEY_PROPERTY, "a", "é", "x" * 40]) | st.text(max_size=8)
    message.properties = draw(st.dictionaries(names, _scalars, max_size=6)) or None
    keys = st.sampled_from(["x-opt-bridge.key", "x-opt-bridge.partition", "other"]).map(symbol)
    message.annotations = draw(st.dictionaries(keys, _annotation_values, max_size=3)) or None
    message.subject = draw(st.none() | st.text(max_size=10))
    message.id = draw(st.none() | st.text(max_size=10) | st.integers(0, 2**64 - 1).map(ulong))
    message.correlation_id = draw(st.none() | st.text(max_size=10))
    message.content_type = draw(st.none() | st.sampled_from(["", "None", "application/json", "text/plain"]))
    message.creation_time = draw(st.sampled_from([0.0, 1.0, -1.0, 1_764_370_000.123, 4_102_444_800.0, 9.2e15]))
    message.durable = draw(st.booleans())
    return bytes(message.encode())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=messages(), key_property=st.sampled_from([KEY_PROPERTY, None, "a"]))
@example(data=bytes(Message(body=b"x", inferred=True, properties={"a": 2**63 - 1}).encode()), key_property="a")
def test_generated_messages_of_the_plain_shape_are_converted_in_c_as_in_python(lane, data, key_property):
    in_c, in_python = agree(lane, data, key_property)
    if in_python is not None:  # proton encodes no name twice and no section twice: C takes every one Python does
        assert in_c == in_python


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=messages(), edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4))
def test_corrupted_messages_get_python_s_record_or_none(lane, data, edits):
    corrupted = bytearray(data)
    for at, byte in edits:
        if corrupted:
            corrupted[at % len(corrupted)] = byte
    agree(lane, bytes(corrupted))


def test_an_inlet_and_its_link_are_collected_together(lane):
    """A link holds its inlet and the inlet its link: closed links must not pile up in memory."""
    import gc
    import weakref

    class Link:
        pass

    link = Link()
    link.inlet = lane.Inlet(link, [], [], TOPIC, KEY_PROPERTY, 1024)
    gone = weakref.ref(link)
    del link
    gc.collect()
    assert gone() is None
