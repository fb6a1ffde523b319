"""AMQP message -> row for every body type, and row -> message for the sink."""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
import uuid

import pytest
from amqp_message_model import bare_message_digest, body_to_bytes, decode_message
from amqp_message_model import value_to_text as value_to_str
from hypothesis import given
from hypothesis import strategies as st
from proton import Message, symbol, ulong
from pyspark_amqp.conversion import (
    SOURCE_COLUMNS,
    arrow_schema,
    message_to_row,
    records_to_arrow,
    row_to_message,
)

from tests.faults.hostile_corpus import deep_list, deep_map

pytestmark = pytest.mark.unit


def _roundtrip(message: Message) -> dict:
    row = message_to_row(decode_message(message.encode()), "addr", 0, 7, 1_764_370_000_123)
    return dict(zip(SOURCE_COLUMNS, row, strict=True))


def test_data_section_bytes_pass_through() -> None:
    row = _roundtrip(Message(body=b'{"device_id": "d", "temperature": 21.5}', content_type="application/json"))
    assert row["body"] == b'{"device_id": "d", "temperature": 21.5}'
    assert row["content_type"] == "application/json"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("héllo", "héllo".encode()),
        (42, b"42"),
        (2.5, b"2.5"),
        (True, b"true"),
        ([1, "two", 3.0], b'[1,"two",3.0]'),
        ({"a": 1, "b": [True, None]}, b'{"a":1,"b":[true,null]}'),
        ({"blob": b"\x00\x01"}, json.dumps({"blob": base64.b64encode(b"\x00\x01").decode()}, separators=(",", ":")).encode()),
        (uuid.UUID(int=5), json.dumps(str(uuid.UUID(int=5))).encode()),
        (None, None),
    ],
)
def test_amqp_value_bodies(body: object, expected: bytes | None) -> None:
    assert _roundtrip(Message(body=body))["body"] == expected


def test_amqp_sequence_body() -> None:
    message = Message(body=[1, 2, 3])
    message.inferred = True  # encoded as an amqp-sequence section
    row = _roundtrip(message)
    assert row["body"] == b"[1,2,3]"


def test_properties_and_header_fields() -> None:
    sent = Message(
        body=b"x",
        id="m-1",
        correlation_id=ulong(9),
        subject="device-3",
        durable=True,
        priority=7,
        creation_time=1_764_370_000.5,
        properties={"device_id": "device-3", "n": 5, "ok": False, "raw": b"\xff", "f": 1.5},
    )
    row = _roundtrip(sent)
    assert row["message_id"] == "m-1"
    assert row["correlation_id"] == "9"
    assert row["subject"] == "device-3"
    assert row["durable"] is True and row["priority"] == 7 and row["delivery_count"] == 0
    assert row["creation_time"] == dt.datetime(2025, 11, 28, 22, 46, 40, 500000, tzinfo=dt.timezone.utc)
    assert row["received_time"] == dt.datetime.fromtimestamp(1_764_370_000.123, tz=dt.timezone.utc)
    assert row["application_properties"] == {"device_id": "device-3", "n": "5", "ok": "false", "raw": "/w==", "f": "1.5"}
    assert (row["address"], row["partition"], row["offset"]) == ("addr", 0, 7)
    assert row["content_type"] is None


def test_value_to_str() -> None:
    assert value_to_str(symbol("s")) == "s"
    assert value_to_str(None) is None
    assert value_to_str([1, "a"]) == '[1,"a"]'
    assert value_to_str(float("nan")) == "NaN"


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text() | st.binary(),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
        max_leaves=12,
    )
)
def test_any_body_converts_without_raising(body: object) -> None:
    out = body_to_bytes(decode_message(Message(body=body).encode()).body)
    assert out is None or isinstance(out, bytes)


def test_redelivery_has_the_same_digest_but_other_messages_do_not() -> None:
    first = Message(body=b"reading", properties={"device_id": "d1"}, durable=True)
    again = Message(body=b"reading", properties={"device_id": "d1"}, durable=True, delivery_count=3, annotations={"x-opt-a": 1})
    other = Message(body=b"reading", properties={"device_id": "d2"}, durable=True)
    assert bare_message_digest(first.encode()) == bare_message_digest(again.encode())
    assert bare_message_digest(first.encode()) != bare_message_digest(other.encode())


def test_row_to_message() -> None:
    msg = row_to_message(
        {
            "body": "text",
            "subject": "s",
            "message_id": "id-1",
            "content_type": "text/plain",
            "application_properties": {"k": "v"},
        },
        "max",
    )
    assert (msg.body, msg.address, msg.subject, msg.id, msg.content_type, msg.properties) == (
        "text",
        "max",
        "s",
        "id-1",
        "text/plain",
        {"k": "v"},
    )
    assert msg.durable is True
    assert row_to_message({"body": b"\x01", "address": "per-row"}, "max").address == "per-row"
    assert row_to_message({"body": bytearray(b"\x02")}, "max").body == b"\x02"
    with pytest.raises(ValueError, match="'body' column must be string or binary, got int"):
        row_to_message({"body": 5}, "max")


def test_arrow_batch_equals_the_rows() -> None:
    messages = [
        Message(body=b"a", id="x", subject="s", properties={"k": 1}, creation_time=1_764_370_000.25, durable=True, priority=9),
        Message(body={"m": 1}),
        Message(body=None),
    ]
    records = [(10 + i, 1_764_370_000_123 + i, m.encode()) for i, m in enumerate(messages)]
    batch = records_to_arrow(records, "addr", 3)
    rows = [dict(zip(SOURCE_COLUMNS, message_to_row(decode_message(p), "addr", 3, o, r), strict=True)) for o, r, p in records]
    as_python = batch.to_pylist()
    for got, want in zip(as_python, rows, strict=True):
        want["application_properties"] = list(want["application_properties"].items())
        assert got == want
    assert batch.schema == arrow_schema()


def _raw_message(message_id: str, *sections: bytes) -> bytes:
    """Properties (message-id only) + ``sections``, encoded by hand: what proton will not encode."""
    props = b"\xd0" + struct.pack(">II", 4 + 2 + len(message_id), 1) + b"\xa1" + bytes([len(message_id)]) + message_id.encode()
    return b"\x00\x53\x73" + props + b"".join(sections)


HOSTILE = {
    # name: (encoded message with message-id "h", the body column): none of them may fail the batch
    "list nested 10k": (_raw_message("h", b"\x00\x53\x77" + deep_list(10_000)), deep_list(10_000)),  # its AMQP encoding
    "map nested 10k": (_raw_message("h", b"\x00\x53\x77" + deep_map(10_000)), deep_map(10_000)),
    "string not UTF-8": (_raw_message("h", b"\x00\x53\x77\xa1\x04a\xff\xfeb"), b"a\xff\xfeb"),  # its bytes as sent
    # proton would read this as no body: the row keeps the message's bytes instead
    "descriptors nested 10k": (_raw_message("h", b"\x00" * 10_000), _raw_message("h", b"\x00" * 10_000)),
    "data cut short": (
        _raw_message("h", b"\x00\x53\x75\xb0\x00\x00\x00\x10abc"),
        _raw_message("h", b"\x00\x53\x75\xb0\x00\x00\x00\x10abc"),
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_messages_become_rows_instead_of_failing_the_batch(name: str) -> None:
    encoded, body = HOSTILE[name]
    good = Message(body=b"ok", id="good").encode()
    rows = records_to_arrow([(0, 1, good), (1, 2, encoded), (2, 3, good)], "addr", 0).to_pylist()
    assert [r["body"] for r in rows] == [b"ok", body, b"ok"]
    assert [r["message_id"] for r in rows] == ["good", "h", "good"]
    assert [r["offset"] for r in rows] == [0, 1, 2]
    assert bare_message_digest(encoded) != bare_message_digest(good)  # never raises


def test_fields_that_cannot_be_read_are_null_and_creation_time_stays_in_range() -> None:
    subject = b"\xa1\x04d\xff\xfe!"  # a subject that is not UTF-8
    props = b"\xd0" + struct.pack(">II", 4 + 3 + 2 + len(subject), 4) + b"\xa1\x01x" + b"\x40\x40" + subject
    encoded = b"\x00\x53\x73" + props + b"\x00\x53\x75\xa0\x02ok"
    (row,) = records_to_arrow([(0, 1, encoded)], "addr", 0).to_pylist()
    assert (row["body"], row["message_id"], row["subject"]) == (b"ok", "x", None)
    times = [Message(body="t", creation_time=s).encode() for s in (-1.0, 4_102_444_800.0, 9e15)]
    got = [r["creation_time"] for r in records_to_arrow([(i, 1, p) for i, p in enumerate(times)], "addr", 0).to_pylist()]
    assert got == [
        dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc),
        dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc),
        None,
    ]
    assert message_to_row(decode_message(times[2]), "addr", 0, 0, 1)[8] is None


def test_digest_of_an_undecodable_message_ignores_what_a_broker_changes() -> None:
    body = b"\x00\x53\x77" + deep_list(5_000)
    first = _raw_message("r", body)
    header = b"\x00\x53\x70\xc0\x03\x02\x41\x40"  # durable, priority null
    redelivered = (
        b"\x00\x53\x70\xc0\x07\x05\x41\x40\x40\x40\x52\x03" + b"\x00\x53\x72\xc1\x05\x02\xa3\x01xA" + first
    )  # delivery-count 3, annotations
    assert bare_message_digest(header + first) == bare_message_digest(redelivered) == bare_message_digest(first)
    assert bare_message_digest(first) != bare_message_digest(_raw_message("s", body))
    assert bare_message_digest(b"not AMQP") != bare_message_digest(b"not AMQP either")
    assert bare_message_digest(b"\x00" * 10_000) != bare_message_digest(b"\x00" * 10_001)  # descriptors of descriptors of ...
