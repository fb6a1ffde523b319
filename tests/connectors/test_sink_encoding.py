"""The sink's fast message encoding gives exactly the bytes of the general path, for every row shape."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from proton import Message
from pyspark_amqp.conversion import row_to_message
from pyspark_amqp.sender import MessageEncoder
from pyspark_amqp.sink import rows_of

pytestmark = pytest.mark.unit

_text = st.text(max_size=40)
_rows = st.fixed_dictionaries(
    {"body": st.one_of(st.none(), st.binary(max_size=600), st.text(max_size=600))},
    optional={
        "address": st.one_of(st.none(), st.sampled_from(["a", "b", "é-addr"])),
        "subject": st.one_of(st.none(), _text),
        "message_id": st.one_of(st.none(), _text),
        "content_type": st.one_of(st.none(), st.just("application/json")),
        "application_properties": st.one_of(st.none(), st.dictionaries(_text, _text, max_size=3)),
    },
)


@given(_rows)
def test_encoding_matches_the_general_path(row: dict) -> None:
    expected = row_to_message(row, "default")
    assert MessageEncoder("default").encode(row) == (expected.address, bytes(expected.encode()))


@pytest.mark.parametrize("subject", [None, "s"])  # the fast path and the general one
def test_a_binary_body_is_a_data_section_and_a_string_an_amqp_value(subject: str | None) -> None:
    """What a JMS client reads: a data section is a BytesMessage, an amqp-value string a TextMessage."""
    encoder = MessageEncoder("default")
    for body, descriptor in ((b"\x00\xffbytes", b"\x00\x53\x75"), ("text", b"\x00\x53\x77")):
        _, encoded = encoder.encode({"body": body, "subject": subject})
        decoded = Message()
        decoded.decode(encoded)
        assert decoded.body == body
        assert decoded.inferred is isinstance(body, bytes)
        assert descriptor in encoded


def test_the_fast_path_is_taken_for_body_only_rows_and_bounded() -> None:
    encoder = MessageEncoder("default")
    encoder._MAX_PREFIXES = 3
    for i in range(10):
        encoder.encode({"body": b"x", "address": f"a{i}", "subject": None})
        assert 1 <= len(encoder._prefixes) <= 3  # one prefix per address, the cache never past its bound
    encoder.encode({"body": b"x", "subject": "s"})
    assert "default" not in encoder._prefixes  # a row with another field goes the general way


def test_a_body_that_is_neither_string_nor_binary_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'body' column must be string or binary"):
        MessageEncoder("default").encode({"body": 5})


def test_arrow_batches_become_one_dict_per_row_with_maps_as_pairs() -> None:
    batch = pa.record_batch(
        {
            "ignored": pa.array([1, 2]),
            "body": pa.array([b"a", None], pa.binary()),
            "application_properties": pa.array([[("k", "v")], None], pa.map_(pa.string(), pa.string())),
        }
    )
    rows = list(rows_of(iter([batch, batch]), ("body", "application_properties")))
    assert rows == [{"body": b"a", "application_properties": [("k", "v")]}, {"body": None, "application_properties": None}] * 2
    assert row_to_message(rows[0], "x").properties == {"k": "v"}
