"""The local spool: an append-only JSON-lines file of records waiting for the database.

Theory of operation
-------------------
One line per record (:meth:`CallRecord.to_json`). Appends come from the event loop and
are single ``os.write`` calls on an ``O_APPEND`` descriptor: the data is in the kernel as
soon as the call returns, so it survives a crash of this process; ``sync`` (fsync, run
in a worker thread) makes it survive a crash of the machine too.

Replay reads forward from ``read_offset`` and returns only complete lines. Once the
records of a chunk are in the database, ``consume`` advances the offset; when the
offset reaches the end the file is truncated to zero. After a crash the offset is lost
and the whole file replays: the backends upsert by call_id, so that is harmless.

A crash in the middle of a write leaves a torn last line. ``open`` moves that tail to
``<name>.bad`` with a log line; a line in the middle that does not parse is moved there
by replay. One writer owns a spool at a time: ``open`` takes an exclusive ``flock``.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from trunkline.runtime.stores.records import CallRecord, RecordFormatError, RecordStoreError

log = logging.getLogger(__name__)

#: First read size of a replay chunk; it doubles until it holds a batch of whole lines,
#: so a record of any size (a long call's transcript) can be read back.
_READ_BYTES = 256 * 1024
#: How far back from the end ``open`` looks for the last newline in one read.
_TAIL_SCAN_BYTES = 64 * 1024


@dataclass
class SpoolChunk:
    """Records read back from the spool, good and bad, and where the read ended."""

    records: list[tuple[CallRecord, bytes]] = field(default_factory=list)
    bad: list[bytes] = field(default_factory=list)
    end: int = 0
    generation: int = 0


class Spool:
    """The spool file ``<directory>/<name>`` and its ``.bad`` and ``.rejected`` siblings."""

    def __init__(self, directory: Path, name: str = "records.jsonl") -> None:
        self.path = directory / name
        self.bad_path = directory / f"{name}.bad"
        self.rejected_path = directory / f"{name}.rejected"
        self._fd = -1
        self.size = 0
        self.read_offset = 0
        #: Bumped when the file shrinks, so a chunk read before that is not consumed.
        self.generation = 0

    @property
    def is_open(self) -> bool:
        return self._fd >= 0

    @property
    def pending_bytes(self) -> int:
        """Bytes written and not yet replayed."""
        return self.size - self.read_offset

    def open(self) -> None:
        """Create or open the file, lock it, and set a torn tail aside.

        Raises:
            RecordStoreError: another writer holds the spool, or it cannot be opened.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise RecordStoreError(
                f"cannot open spool {self.path}: {exc}", retryable=False
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise RecordStoreError(
                f"spool {self.path} is in use by another writer", retryable=False
            ) from exc
        self._fd = fd
        self.size = os.fstat(fd).st_size
        self.read_offset = 0
        self._cut_torn_tail()

    def _cut_torn_tail(self) -> None:
        end = self.size
        while end > 0:
            start = max(0, end - _TAIL_SCAN_BYTES)
            block = os.pread(self._fd, end - start, start)
            nl = block.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            end = start
        else:
            keep = 0
        if keep == self.size:
            return
        tail = os.pread(self._fd, self.size - keep, keep)
        self.set_aside([tail])
        os.ftruncate(self._fd, keep)
        log.warning(
            "spool %s: moved a torn last line (%d bytes) to %s",
            self.path, len(tail), self.bad_path,
        )
        self.size = keep

    def append(self, lines: list[bytes]) -> None:
        """Append ``lines`` (each without its newline). All of them land, or none.

        Raises:
            OSError: the disk is full or failing; the file is left as it was.
        """
        data = b"".join(line + b"\n" for line in lines)
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, view[written:])
        except OSError:
            if written:  # never leave a torn line behind
                os.ftruncate(self._fd, self.size)
                self.generation += 1
            raise
        self.size += len(data)

    def sync(self) -> None:
        """fsync the file (blocking: call it from a worker thread)."""
        os.fsync(self._fd)

    def read(self, max_lines: int) -> SpoolChunk:
        """Read up to ``max_lines`` whole lines from ``read_offset`` (blocking: use a thread)."""
        chunk = SpoolChunk(end=self.read_offset, generation=self.generation)
        start, size = self.read_offset, self.size
        want = _READ_BYTES
        while True:
            data = os.pread(self._fd, min(want, size - start), start)
            if data.count(b"\n") >= max_lines or start + len(data) >= size:
                break
            want *= 2
        pos = 0
        while len(chunk.records) + len(chunk.bad) < max_lines:
            nl = data.find(b"\n", pos)
            if nl < 0:
                break  # an incomplete line: an append in progress
            line = data[pos:nl]
            pos = nl + 1
            try:
                chunk.records.append((CallRecord.from_json(line), line))
            except RecordFormatError:
                chunk.bad.append(line)
        chunk.end = start + pos
        return chunk

    def consume(self, chunk: SpoolChunk) -> None:
        """Mark ``chunk`` as stored; truncate the file once everything is."""
        if chunk.generation != self.generation:
            return  # the file shrank under the read; those lines will be read again
        if chunk.bad:
            self.set_aside(chunk.bad)
            log.warning(
                "spool %s: moved %d unreadable line(s) to %s",
                self.path, len(chunk.bad), self.bad_path,
            )
        self.read_offset = chunk.end
        if self.read_offset >= self.size:
            os.ftruncate(self._fd, 0)
            self.size = self.read_offset = 0
            self.generation += 1

    def set_aside(self, lines: list[bytes]) -> None:
        """Append unreadable data to the ``.bad`` file, for a person to look at."""
        _append_file(self.bad_path, lines)

    def reject(self, lines: list[bytes]) -> None:
        """Append records the database refused for good to the ``.rejected`` file."""
        _append_file(self.rejected_path, lines)

    def close(self) -> None:
        """Close the file and release the lock."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _append_file(path: Path, lines: list[bytes]) -> None:
    try:
        with path.open("ab") as f:
            for line in lines:
                f.write(line.rstrip(b"\n") + b"\n")
    except OSError:
        log.exception("cannot write %s; %d line(s) only in this log", path, len(lines))
        for line in lines:
            log.error("lost line: %r", line[:4096])
