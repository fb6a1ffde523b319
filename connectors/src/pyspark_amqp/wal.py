"""The source's durable write-ahead log: one append-only sequence of records per log partition.

A log partition is a folder of segment files ``<first sequence number>.wal``. A record's
offset is its sequence number (0, 1, 2, ...) in the partition, like a Kafka offset, and
never changes: trimming deletes whole segments below the committed offset, and the next
record after a restart continues the numbering.

Record layout (big-endian): ``u32 payload length | u32 CRC-32 of the rest | i64 received
time (epoch ms) | payload``. A record is durable once the segment's file descriptor has
been ``fdatasync``'d after its write; the ingest side accepts an AMQP delivery only then.
A crash can leave a torn record at the end of the last segment: :meth:`LogWriter.open`
truncates the file to the last whole record. Those torn records were never accepted, so
the broker still holds them and redelivers.

Pitfall: the log is a folder on a file system. On a Spark cluster, the executors read the
log (``read()`` runs there), so ``logDir`` must be on storage the driver writes and every
executor can read at the same path (a shared POSIX file system such as NFS), or the
executors must run on the driver's host.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"AMQPWAL1"
HEADER = struct.Struct(">IIq")
SUFFIX = ".wal"
COMMITTED_FILE = "committed"
MAX_RECORD_BYTES = 256 * 1024 * 1024


class CorruptLogError(RuntimeError):
    """A record inside the durable part of the log failed its checksum or is cut short."""


@dataclass(frozen=True)
class Record:
    offset: int
    received_ms: int
    payload: bytes


def _segment_name(base: int) -> str:
    return f"{base:020d}{SUFFIX}"


def segments(folder: Path) -> list[tuple[int, Path]]:
    """The partition's segments as ``(first offset, path)``, oldest first."""
    found = []
    for path in folder.glob(f"*{SUFFIX}"):
        try:
            found.append((int(path.stem), path))
        except ValueError:
            continue
    return sorted(found)


def _scan(path: Path) -> tuple[int, int]:
    """Count the whole, valid records in a segment; returns ``(count, byte length of them)``."""
    count = 0
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            return 0, 0
        good = f.tell()
        while True:
            head = f.read(HEADER.size)
            if len(head) < HEADER.size:
                break
            length, crc, received = HEADER.unpack(head)
            if length > MAX_RECORD_BYTES:
                break
            payload = f.read(length)
            if len(payload) < length or zlib.crc32(payload, zlib.crc32(head[8:])) != crc:
                break
            count += 1
            good = f.tell()
    return count, good


def encode_record(received_ms: int, payload: bytes) -> bytes:
    stamp = struct.pack(">q", received_ms)
    return struct.pack(">II", len(payload), zlib.crc32(payload, zlib.crc32(stamp))) + stamp + payload


@dataclass
class SyncTicket:
    """What a flush wrote: make ``fd`` durable, then offsets below ``upto`` are durable."""

    fd: int
    upto: int
    close_after: bool = False
    dir_fd: int | None = None

    def sync(self, fsync: bool = True) -> None:
        if fsync:
            os.fdatasync(self.fd)
            if self.dir_fd is not None:
                os.fsync(self.dir_fd)
        if self.dir_fd is not None:
            os.close(self.dir_fd)
        if self.close_after:
            os.close(self.fd)


class LogWriter:
    """Appends records to one log partition; single writer, single thread.

    ``append`` only buffers; ``flush`` writes the buffer to the OS and returns the
    :class:`SyncTicket` that makes it durable, so the (slow) sync can run on another thread
    while this one goes on receiving. Tickets must be synced in the order they were issued.
    """

    def __init__(self, folder: Path, segment_bytes: int = 64 * 1024 * 1024) -> None:
        self.folder = Path(folder)
        self.segment_bytes = segment_bytes
        self._buffer: list[bytes] = []
        self._fd = -1
        self._size = 0
        self.next_offset = 0

    def open(self) -> LogWriter:
        """Recover the partition: truncate a torn tail, continue numbering after the last whole record."""
        self.folder.mkdir(parents=True, exist_ok=True)
        existing = segments(self.folder)
        if not existing:
            start = read_committed(self.folder)
            self._new_segment(start)
            os.fsync(self._fd)
            self._sync_dir()
            return self
        base, path = existing[-1]
        count, good = _scan(path)
        self._fd = os.open(path, os.O_WRONLY)
        if good == 0:  # even the magic was torn
            os.ftruncate(self._fd, 0)
            os.write(self._fd, MAGIC)
            good = len(MAGIC)
        elif os.fstat(self._fd).st_size != good:
            os.ftruncate(self._fd, good)
        os.fsync(self._fd)
        os.lseek(self._fd, good, os.SEEK_SET)
        self._size = good
        self.next_offset = base + count
        return self

    def _new_segment(self, base: int) -> None:
        path = self.folder / _segment_name(base)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(self._fd, MAGIC)
        self._size = len(MAGIC)
        self.next_offset = base

    def _sync_dir(self) -> None:
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def append(self, received_ms: int, payload: bytes) -> int:
        """Buffer one record; returns its offset. Not durable before its flush's ticket is synced."""
        if len(payload) > MAX_RECORD_BYTES:
            raise ValueError(f"record of {len(payload)} bytes is over the log's limit of {MAX_RECORD_BYTES}")
        self._buffer.append(encode_record(received_ms, payload))
        offset = self.next_offset
        self.next_offset += 1
        return offset

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def flush(self) -> SyncTicket | None:
        """Write the buffered records to the OS; None if there was nothing to write."""
        if not self._buffer:
            return None
        data = b"".join(self._buffer)
        self._buffer.clear()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)
        if self._size < self.segment_bytes:
            return SyncTicket(self._fd, self.next_offset)
        # Roll: the old segment is closed once synced; the new one's directory entry is synced too.
        old = SyncTicket(self._fd, self.next_offset, close_after=True, dir_fd=os.open(self.folder, os.O_RDONLY))
        self._new_segment(self.next_offset)
        return old

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_range(folder: Path, start: int, end: int) -> Iterator[Record]:
    """Yield the records with ``start <= offset < end``; raises :class:`CorruptLogError` if any is missing or bad."""
    if start >= end:
        return
    offset = start
    parts = segments(Path(folder))
    for i, (base, path) in enumerate(parts):
        following = parts[i + 1][0] if i + 1 < len(parts) else None
        if following is not None and following <= offset:
            continue
        if base > offset:
            break
        with open(path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise CorruptLogError(f"{path} is not a log segment")
            current = base
            while offset < end:
                head = f.read(HEADER.size)
                if len(head) < HEADER.size:
                    break
                length, crc, received = HEADER.unpack(head)
                if current < offset:
                    f.seek(length, os.SEEK_CUR)
                    current += 1
                    continue
                payload = f.read(length)
                if len(payload) < length or zlib.crc32(payload, zlib.crc32(head[8:])) != crc:
                    raise CorruptLogError(f"record {current} in {path} is damaged")
                yield Record(current, received, payload)
                current += 1
                offset += 1
        if offset >= end:
            return
    if offset < end:
        raise CorruptLogError(f"records {offset}..{end - 1} are not in the log at {folder} (trimmed or deleted)")


def first_offset(folder: Path) -> int:
    """The first offset a new query should read: the committed offset, or the oldest record kept."""
    parts = segments(Path(folder))
    oldest = parts[0][0] if parts else 0
    return max(oldest, read_committed(Path(folder)))


def read_committed(folder: Path) -> int:
    try:
        return int((Path(folder) / COMMITTED_FILE).read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def mark_committed(folder: Path, committed: int) -> None:
    """Record ``committed`` (never moving it back) without deleting anything."""
    folder = Path(folder)
    if committed > read_committed(folder):
        tmp = folder / (COMMITTED_FILE + ".tmp")
        tmp.write_text(f"{committed}\n")
        os.replace(tmp, folder / COMMITTED_FILE)


def trim(folder: Path, committed: int) -> int:
    """Record ``committed`` and delete every segment that holds only offsets below it; returns how many."""
    folder = Path(folder)
    mark_committed(folder, committed)
    parts = segments(folder)
    removed = 0
    for (_, path), (following, _) in zip(parts, parts[1:], strict=False):
        if following <= committed:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
