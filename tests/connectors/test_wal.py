"""The write-ahead log: append, replay of a range, trim, recovery after a torn write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyspark_amqp import wal

pytestmark = pytest.mark.unit


def _write(folder: Path, payloads: list[bytes], segment_bytes: int = 1 << 20) -> wal.LogWriter:
    writer = wal.LogWriter(folder, segment_bytes).open()
    for i, payload in enumerate(payloads):
        writer.append(1_000 + i, payload)
        if i % 7 == 6:
            ticket = writer.flush()
            assert ticket is not None
            ticket.sync()
    ticket = writer.flush()
    if ticket:
        ticket.sync()
    return writer


def test_append_then_replay_exact_ranges(tmp_path: Path) -> None:
    payloads = [f"message {i}".encode() * (i % 5 + 1) for i in range(100)]
    writer = _write(tmp_path, payloads, segment_bytes=512)  # many small segments
    writer.close()
    assert len(wal.segments(tmp_path)) > 5
    assert [r.payload for r in wal.read_range(tmp_path, 0, 100)] == payloads
    got = list(wal.read_range(tmp_path, 37, 61))
    assert [r.offset for r in got] == list(range(37, 61))
    assert [r.payload for r in got] == payloads[37:61]
    assert [r.received_ms for r in got] == [1_000 + i for i in range(37, 61)]
    assert list(wal.read_range(tmp_path, 10, 10)) == []


def test_offsets_continue_after_reopen(tmp_path: Path) -> None:
    _write(tmp_path, [b"a", b"b", b"c"]).close()
    writer = wal.LogWriter(tmp_path).open()
    assert writer.next_offset == 3
    assert writer.append(5, b"d") == 3
    writer.flush().sync()
    writer.close()
    assert [r.payload for r in wal.read_range(tmp_path, 0, 4)] == [b"a", b"b", b"c", b"d"]


def test_trim_deletes_only_whole_segments_below_commit_and_keeps_numbering(tmp_path: Path) -> None:
    payloads = [bytes([i]) * 100 for i in range(50)]
    _write(tmp_path, payloads, segment_bytes=1000).close()
    before = wal.segments(tmp_path)
    removed = wal.trim(tmp_path, 25)
    after = wal.segments(tmp_path)
    assert removed == len(before) - len(after) > 0
    assert after[0][0] <= 25  # the segment holding offset 25 stays
    assert wal.first_offset(tmp_path) == 25
    assert [r.offset for r in wal.read_range(tmp_path, 25, 50)] == list(range(25, 50))
    with pytest.raises(wal.CorruptLogError, match="not in the log"):
        list(wal.read_range(tmp_path, 0, 5))
    wal.trim(tmp_path, 50)
    assert len(wal.segments(tmp_path)) == 1  # the active segment is never deleted
    writer = wal.LogWriter(tmp_path, 1000).open()
    assert writer.next_offset == 50


def test_torn_write_is_truncated_on_recovery(tmp_path: Path) -> None:
    _write(tmp_path, [b"one", b"two", b"three"]).close()
    (_, path) = wal.segments(tmp_path)[-1]
    whole = path.stat().st_size
    with open(path, "ab") as f:  # half a record, as a crash mid-write leaves it
        f.write(wal.encode_record(9, b"four-is-torn")[:9])
    writer = wal.LogWriter(tmp_path).open()
    assert writer.next_offset == 3
    assert path.stat().st_size == whole
    writer.append(10, b"four")
    writer.flush().sync()
    writer.close()
    assert [r.payload for r in wal.read_range(tmp_path, 0, 4)] == [b"one", b"two", b"three", b"four"]


def test_corrupted_record_is_cut_at_recovery_and_reported_on_read(tmp_path: Path) -> None:
    _write(tmp_path, [b"alpha", b"beta", b"gamma"]).close()
    (_, path) = wal.segments(tmp_path)[-1]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip a bit in the last payload
    path.write_bytes(bytes(data))
    with pytest.raises(wal.CorruptLogError, match="record 2"):
        list(wal.read_range(tmp_path, 0, 3))
    assert wal.LogWriter(tmp_path).open().next_offset == 2


def test_empty_log_starts_at_committed_offset(tmp_path: Path) -> None:
    (tmp_path / wal.COMMITTED_FILE).write_text("42\n")
    writer = wal.LogWriter(tmp_path).open()
    assert writer.next_offset == 42
    assert wal.first_offset(tmp_path) == 42


def test_sync_ticket_makes_data_durable_in_order(tmp_path: Path) -> None:
    writer = wal.LogWriter(tmp_path, segment_bytes=64).open()
    writer.append(1, b"x" * 100)
    ticket = writer.flush()
    assert ticket is not None and ticket.close_after and ticket.upto == 1
    ticket.sync()
    with pytest.raises(OSError):
        os.fstat(ticket.fd)  # the rolled segment's descriptor was closed after its sync


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=60), st.integers(64, 2000), st.data())
def test_any_payloads_replay_exactly(
    tmp_path_factory: pytest.TempPathFactory, payloads: list[bytes], seg: int, data: st.DataObject
) -> None:
    folder = tmp_path_factory.mktemp("wal")
    _write(folder, payloads, segment_bytes=seg).close()
    start = data.draw(st.integers(0, len(payloads)))
    end = data.draw(st.integers(start, len(payloads)))
    assert [r.payload for r in wal.read_range(folder, start, end)] == payloads[start:end]
