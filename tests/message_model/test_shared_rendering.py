"""Shared vectors: the Spark connector and the bridge render every AMQP value the same way.

Each vector goes through the connector (a source row) and through the bridge (a Kafka record
with the ``raw`` converter); the text in the row must equal the bytes in the record, by the
rules of :mod:`amqp_message_model.values` (a binary property is its bytes in a Kafka header
and their base64 in a Spark column, the only difference, because a Kafka header is bytes and
a Spark map value is a string).
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest
from amqp_kafka_bridge.converters import to_record
from amqp_message_model import decode_message, value_to_text
from proton import Described, Message, char, symbol, timestamp, ubyte, ulong
from pyspark_amqp.conversion import SOURCE_COLUMNS, message_to_row

pytestmark = pytest.mark.unit

BODIES = {
    "data": Message(body=b"\x00\xffbin", inferred=True),
    "value-string": Message(body="héllo"),
    "value-binary": Message(body=b"raw"),
    "value-int": Message(body=-7),
    "value-double": Message(body=1.5),
    "value-nan": Message(body=float("nan")),
    "value-bool": Message(body=False),
    "value-list": Message(body=[1, "x", None, b"\x01"]),
    "value-map": Message(body={"a": {"b": [1]}, symbol("s"): uuid.UUID(int=1)}),
    "value-timestamp": Message(body=timestamp(1_764_370_000_123)),
    "value-described": Message(body=Described(symbol("d"), 5)),
    "sequence": Message(body=[1, 2], inferred=True),
    "none": Message(),
}

PROPERTIES = {
    "string": "text",
    "symbol": symbol("sym"),
    "char": char("c"),
    "bool": True,
    "int": 42,
    "ulong": ulong(2**63),
    "ubyte": ubyte(7),
    "double": 21.7,
    "inf": float("inf"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "timestamp": timestamp(1_764_370_000_123),
    "binary": b"\x00\x01\xff",
    "list": [1, "a", b"\x02"],
    "map": {"k": 1.5},
}

IDS = {
    "string": "id-1",
    "ulong": ulong(12),
    "uuid": uuid.UUID(int=99),
    "binary": b"\x0a\x0b",
}


def _row(message: Message) -> dict:
    row = message_to_row(decode_message(bytes(message.encode())), "a", 0, 0, 1)
    return dict(zip(SOURCE_COLUMNS, row, strict=True))


def _wire(message: Message) -> Message:
    return decode_message(bytes(message.encode()))


@pytest.mark.parametrize("name", list(BODIES))
def test_bodies_render_the_same(name: str) -> None:
    message = BODIES[name]
    assert _row(message)["body"] == to_record(_wire(message), "t", "raw").value


def test_property_values_render_the_same() -> None:
    message = Message(body=b"x", inferred=True, properties=PROPERTIES)
    columns = _row(message)["application_properties"]
    headers = dict(to_record(_wire(message), "t", "raw").headers)
    assert set(columns) == set(headers) == set(PROPERTIES)
    for name in PROPERTIES:
        header = headers[name]
        expected = base64.b64encode(header).decode() if name == "binary" else header.decode()
        assert columns[name] == expected, name
    assert columns["ulong"] == str(2**63) and columns["uuid"] == "12345678-1234-5678-1234-567812345678"
    assert columns["timestamp"] == "1764370000123" and columns["inf"] == "inf" and columns["bool"] == "true"
    assert columns["list"] == '[1,"a","Ag=="]' and columns["map"] == '{"k":1.5}'


@pytest.mark.parametrize("name", list(IDS))
def test_message_and_correlation_ids_render_the_same(name: str) -> None:
    message = Message(body=b"x", inferred=True, id=IDS[name], correlation_id=IDS[name])
    row = _row(message)
    headers = dict(to_record(_wire(message), "t", "raw").headers)
    assert row["message_id"] == headers["amqp.message-id"].decode() == row["correlation_id"]
    assert headers["amqp.correlation-id"].decode() == row["correlation_id"]
    assert not row["message_id"].startswith('"')  # never JSON-quoted


def test_content_type_absent_or_present_renders_the_same() -> None:
    bare = Message(body=b"x", inferred=True)
    assert _row(bare)["content_type"] is None
    assert "amqp.content-type" not in dict(to_record(_wire(bare), "t", "raw").headers)
    typed = Message(body=b"x", inferred=True, content_type="application/json")
    assert _row(typed)["content_type"] == dict(to_record(_wire(typed), "t", "raw").headers)["amqp.content-type"].decode()


def test_value_to_text_table() -> None:
    assert value_to_text(float("nan")) == "NaN"
    assert value_to_text(float("-inf")) == "-inf"
    assert value_to_text(None) is None
    assert value_to_text(dt.timezone.utc) == str(dt.timezone.utc)
