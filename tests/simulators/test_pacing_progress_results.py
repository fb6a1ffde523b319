"""Pure helpers of the CLIs: pacing arithmetic, progress line, message and result codecs."""

from __future__ import annotations

import io
import json

import pytest
from proton import Message

from simulators.messages import body_text, message_to_json, message_to_reading, reading_to_message
from simulators.model import Reading
from simulators.pacing import Pacer
from simulators.progress import ProgressLine, Stats, format_progress
from simulators.results import WindowResult, format_row, header

pytestmark = pytest.mark.unit


def test_pacer_releases_rate_per_second_with_the_first_at_start() -> None:
    p = Pacer(rate=10, start=100.0)
    assert p.due(99.0) == 0
    assert p.due(100.0) == 1
    assert p.due(100.55) == 5
    assert p.due(101.0) == 5
    assert p.released == 11


def test_pacer_limit_and_until_bound_the_total() -> None:
    p = Pacer(rate=10, start=0.0, limit=25)
    assert p.due(100.0) == 25 and p.finished()
    q = Pacer(rate=10, start=0.0, until=2.0)
    assert q.due(1.0) == 11 and not q.finished()
    assert q.due(5.0) == 9 and q.finished(), "nothing due at or after until"


def test_pacer_bounds_catch_up_bursts() -> None:
    p = Pacer(rate=1000, start=0.0, max_burst=100)
    assert p.due(10.0) == 100
    assert p.due(10.0) == 100


def test_progress_line_counts_in_flight_and_rate() -> None:
    s = Stats(sent=12, accepted=9, rejected=1, resent=1)
    assert s.in_flight() == 1
    text = format_progress(s, elapsed=3.0)
    assert "sent 12" in text and "accepted 9" in text and "3.0 msg/s" in text and "rejected 1" in text


def test_progress_line_throttles_when_not_a_tty() -> None:
    out = io.StringIO()
    line = ProgressLine(stream=out, log_interval=5.0)
    for t in range(10):
        line.update(Stats(sent=t), elapsed=t, now=float(t))
    line.update(Stats(sent=10), elapsed=10, now=10.0, final=True)
    assert len(out.getvalue().splitlines()) == 3  # t=0, t=5, final


def test_temperature_message_contract() -> None:
    r = Reading("device-3", 21.7, 1764370000123)
    m = Message()
    m.decode(reading_to_message(r).encode())
    assert m.content_type == "application/json"
    assert m.subject == "device-3" and m.properties == {"device_id": "device-3"}
    assert m.inferred, "body must be a data section"
    assert json.loads(bytes(m.body)) == r.to_dict()
    assert message_to_reading(m) == r


@pytest.mark.parametrize("body", ['{"a": 1}', b'{"a": 1}', {"a": 1}])
def test_body_text_accepts_data_string_and_map_bodies(body: object) -> None:
    m = Message(body=body, inferred=isinstance(body, bytes))
    assert json.loads(body_text(m)) == {"a": 1}
    assert message_to_json(m) == {"a": 1}


def test_message_to_json_refuses_non_objects() -> None:
    with pytest.raises(ValueError):
        message_to_json(Message(body="[1, 2]"))


def test_result_row_table() -> None:
    row = WindowResult.from_dict(
        {
            "window_start": "2025-11-28T22:46:40.000Z",
            "window_end": "2025-11-28T22:46:45.000Z",
            "max_temperature": 23.456,
            "device_id": "device-7",
            "count": 1000,
        }
    )
    lines = header().splitlines() + [format_row(row)]
    assert lines[0].split() == ["window_start", "window_end", "max_temperature", "device_id", "count"]
    assert format_row(row).split() == ["2025-11-28T22:46:40.000Z", "2025-11-28T22:46:45.000Z", "23.46", "device-7", "1000"]
    with pytest.raises(KeyError):
        WindowResult.from_dict({"window_start": "x"})
