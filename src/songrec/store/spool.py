"""The request log's spool: every event on local disk before it is handed to the writer.

The API appends each delivery (a sequence number and a few pickled events) to its spool file,
and fsyncs on a short interval; the writer records, in the same transaction as the events, the
last sequence number of each spool it wrote (store.schema.event_spools). So what the API
answered survives the API's SIGKILL, a writer's death and a store that is down: a spool whose
owner is gone is replayed by the next API process to start, and the writer skips what it had
already written. A spool's files are deleted once all of it is written.

Files: `<spool id>.lock` (held with flock by the process that writes the spool, for its life)
and `<spool id>-<segment>.spool`, records of `<seq: 8 bytes><length: 4 bytes>` then the
delivery's list of pickled events, pickled. A record cut short by a kill is ignored when read.
A process killed loses nothing written (the page cache outlives it); the fsync is for a crash
of the machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

HEADER = struct.Struct("<QI")
SEGMENT_BYTES = 64 * 1024 * 1024  # a segment is deleted whole, once all of it is written


class Spool:
    """This process's spool: append deliveries, fsync on an interval, forget what was written."""

    def __init__(self, directory: Path, sync_interval: float = 0.5) -> None:
        self.directory = directory
        self.sync_interval = sync_interval
        self.id = uuid.uuid4().hex
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = (directory / f"{self.id}.lock").open("wb")
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._segment = 0
        self._file: BinaryIO | None = None
        self._size = 0  # bytes in the open segment
        self._closed: list[tuple[Path, int]] = []  # finished segments and their last seq
        self._last_seq = 0  # the last seq appended
        self._synced_at = time.monotonic()
        self._dirty = False

    def append(self, deliveries: list[tuple[int, list[bytes]]]) -> None:
        """Append (seq, pickled events) records, in one write."""
        if not deliveries:
            return
        if self._file is None:
            self._segment += 1
            self._file = self._path(self._segment).open("ab", buffering=0)
            self._size = 0
        parts = []
        for seq, events in deliveries:
            body = pickle.dumps(events, protocol=pickle.HIGHEST_PROTOCOL)
            parts.append(HEADER.pack(seq, len(body)))
            parts.append(body)
        data = b"".join(parts)
        self._file.write(data)
        self._size += len(data)
        self._last_seq = deliveries[-1][0]
        self._dirty = True
        if self._size >= SEGMENT_BYTES:
            self._finish_segment()

    def sync(self, force: bool = False) -> None:
        """fsync what was appended, at most every `sync_interval` unless forced."""
        now = time.monotonic()
        if not self._dirty or (not force and now - self._synced_at < self.sync_interval):
            return
        if self._file is not None:
            os.fsync(self._file.fileno())
        self._synced_at = now
        self._dirty = False

    def forget_through(self, seq: int) -> None:
        """Delete the segments whose every record up to `seq` is written."""
        if self._file is not None and seq >= self._last_seq:
            # All of the open segment is written: delete it as it is (an fsync first is wasted).
            self._file.close()
            self._file = None
            self._path(self._segment).unlink(missing_ok=True)
            self._dirty = False
        keep = []
        for path, last in self._closed:
            if last <= seq:
                path.unlink(missing_ok=True)
            else:
                keep.append((path, last))
        self._closed = keep

    def close(self) -> None:
        """fsync and close; files not yet written stay for the next start to replay."""
        self.sync(force=True)
        if self._file is not None:
            self._finish_segment()
        if not self._closed:
            (self.directory / f"{self.id}.lock").unlink(missing_ok=True)
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()

    def _finish_segment(self) -> None:
        assert self._file is not None
        os.fsync(self._file.fileno())
        self._file.close()
        self._closed.append((self._path(self._segment), self._last_seq))
        self._file = None
        self._dirty = False

    def _path(self, segment: int) -> Path:
        return self.directory / f"{self.id}-{segment:06d}.spool"


def beside_sqlite_file(url: str) -> Path | None:
    """A SQLite store's spool: a folder beside its file (other stores: give one)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url[len(prefix) :] in ("", ":memory:"):
        return None
    return Path(url[len(prefix) :] + ".spool")


def orphan_records(directory: Path) -> Iterator[tuple[str, list[tuple[int, list[bytes]]]]]:
    """The records of each spool whose process is gone: (spool id, [(seq, events), ...])."""
    for spool_id, files in orphans(directory):
        yield spool_id, [record for path in files for record in read_records(path)]


def orphans(directory: Path) -> Iterator[tuple[str, list[Path]]]:
    """Spools whose writing process is gone (their lock is free): (spool id, segment files)."""
    if not directory.is_dir():
        return
    for lock_path in sorted(directory.glob("*.lock")):
        spool_id = lock_path.stem
        with lock_path.open("ab") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live process's spool
            fcntl.flock(lock, fcntl.LOCK_UN)
        yield spool_id, sorted(directory.glob(f"{spool_id}-*.spool"))


def read_records(path: Path) -> Iterator[tuple[int, list[bytes]]]:
    """The records of a segment file, (seq, pickled events); a record cut short ends it."""
    data = path.read_bytes()
    at = 0
    while at + HEADER.size <= len(data):
        seq, length = HEADER.unpack_from(data, at)
        at += HEADER.size
        if at + length > len(data):
            return
        yield seq, pickle.loads(data[at : at + length])
        at += length


def remove_spool(directory: Path, spool_id: str) -> None:
    for path in directory.glob(f"{spool_id}-*.spool"):
        path.unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (directory / f"{spool_id}.lock").unlink()
