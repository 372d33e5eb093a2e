"""The request log's writer process: deliveries from the API process written in batches.

A delivery is (delivery number, spool id, seq, pickled events): what the API process appended
to its spool (store.spool). Each batch of deliveries is written in one transaction together
with how far each spool got (event_spools), so a delivery handed over twice (after this process
died, or replayed from the spool of an API process that died) is written once. When a write
fails (store down, read-only, locked) the batch is tried again every `retry_seconds` until it
goes in: nothing is dropped here; the API's bounded buffer is what limits memory. A SQLite
file deleted under the writer is created again, never written into unlinked.

Runs at the lowest CPU priority so that requests get the CPU first; counts what it wrote in
counters it shares with the API process (read by /metrics), and the last delivery number it
wrote (COMMITTED), so that the API can forget those deliveries and their spool files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Table,
    insert,
    select,
)
from sqlalchemy.engine import Connection

from songrec.store.engine import make_engine, safe_url
from songrec.store.events import FeedbackEvent, RequestEvent, unpack_event
from songrec.store.schema import event_spools, feedback_table, metadata, recommendations_table, requests_table

log = logging.getLogger(__name__)

# Counters the writer process shares with the API process (int64, written by the writer only).
LOGGED, BATCHES, UP, COMMITTED = range(4)
N_SHARED = 4

Delivery = tuple[int, str, int, list[bytes]]  # (delivery number, spool id, seq, pickled events)


@dataclass(frozen=True)
class WriterSettings:
    url: str
    batch_size: int
    flush_interval: float
    retry_seconds: float
    connect_timeout: float


def writer_main(settings: WriterSettings, chunks: Any, shared: Any, parent: int) -> None:
    """The writer process: deliveries from the API process to the database until told to stop."""
    # Stopped by the API (a None after the last chunk), not by the signals that stop the server:
    # a SIGTERM to the whole process group must not lose what is still to be written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _lowest_priority()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    writer = BatchWriter(settings, shared)
    stopping = False
    while not stopping:
        try:
            first = chunks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:  # the API process is gone; its spool keeps the rest
                break
            continue
        batch: list[Delivery] = []
        for delivery in _take_available(chunks, first, settings.batch_size):
            if delivery is None:
                stopping = True
            else:
                batch.append(delivery)
        if batch and not writer.write_until_done(batch, lambda: os.getppid() != parent):
            break
    writer.engine.dispose()


@contextlib.contextmanager
def stop_signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while the writer process is started.

    The writer ignores them itself (a signal to the whole process group must not stop it before
    the API hands over what it holds), but only once its imports are done. A server stopped
    within that second lost its events, so the writer inherits the ignored state instead.
    Only the main thread may change signal handlers; elsewhere the writer's own call covers it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _take_available(chunks: Any, first: Any, limit: int) -> Iterator[Any]:
    """`first`, then the chunks already delivered, up to about `limit` events."""
    yield first
    taken = len(first[3]) if first else 0
    while taken < limit:
        try:
            delivery = chunks.get_nowait()
        except queue.Empty:
            return
        yield delivery
        if delivery is None:
            return
        taken += len(delivery[3])


def _lowest_priority() -> None:
    """Run only when the CPU has nothing better to do (Linux SCHED_IDLE), else at nice 19."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)


class BatchWriter:
    def __init__(self, settings: WriterSettings, shared: Any) -> None:
        self.settings = settings
        self.shared = shared
        self.engine = make_engine(settings.url, settings.connect_timeout)
        self.sqlite = SqliteInserts(self.engine.dialect) if self.engine.dialect.name == "sqlite" else None
        database = self.engine.url.database if self.sqlite is not None else None
        self.sqlite_file = Path(database) if database and database != ":memory:" else None
        self.sqlite_inode: int | None = None  # the file the connections have open
        self.tables_ready = False
        self.last_error: str | None = None
        self.progress: dict[str, int] = {}  # spool id -> the last seq written

    def write_until_done(self, batch: list[Delivery], give_up: Callable[[], bool]) -> bool:
        """Write the batch, trying again every retry_seconds while the store fails; False when
        `give_up` said so first (the API process is gone: its spool keeps the batch)."""
        while True:
            try:
                self._write(batch)
            except Exception as exc:  # the store's failure must never end the writer
                self._failed(exc)
                deadline = time.monotonic() + self.settings.retry_seconds
                while time.monotonic() < deadline:
                    if give_up():
                        return False
                    time.sleep(min(0.2, self.settings.retry_seconds))
                continue
            if self.last_error is not None:
                log.info("event store %s is available again", safe_url(self.settings.url))
            self.last_error = None
            self.shared[UP] = 1
            return True

    def _failed(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if self.last_error is None:
            url = safe_url(self.settings.url)
            log.warning("event store %s is unavailable, keeping events until it is back: %s", url, message)
        self.last_error = message
        self.shared[UP] = 0
        self.engine.dispose()  # a read-only or locked file's connections are not reused
        self.tables_ready = False

    def _write(self, batch: list[Delivery]) -> None:
        self._check_sqlite_file()
        if not self.tables_ready:
            metadata.create_all(self.engine, checkfirst=True)
            self.tables_ready = True
            if self.sqlite_file is not None:
                self.sqlite_inode = self.sqlite_file.stat().st_ino
        with self.engine.begin() as connection:
            fresh, reached = self._unwritten(connection, batch)
            events = [unpack_event(event) for delivery in fresh for event in delivery[3]]
            if events:
                self._insert(connection, events)
            for spool_id, seq in reached.items():
                _record_progress(connection, spool_id, seq)
        self.progress.update(reached)
        written = sum(len(delivery[3]) for delivery in fresh)
        self.shared[LOGGED] += written
        self.shared[BATCHES] += 1
        self.shared[COMMITTED] = max(self.shared[COMMITTED], batch[-1][0])

    def _unwritten(
        self, connection: Connection, batch: list[Delivery]
    ) -> tuple[list[Delivery], dict[str, int]]:
        """The deliveries not written yet, and the last seq of each spool after this batch."""
        reached: dict[str, int] = {}
        fresh = []
        for delivery in batch:
            spool_id, seq = delivery[1], delivery[2]
            if spool_id not in self.progress:
                found = connection.execute(
                    select(event_spools.c.last_seq).where(event_spools.c.spool_id == spool_id)
                ).scalar_one_or_none()
                self.progress[spool_id] = int(found) if found is not None else 0
            if seq > max(self.progress[spool_id], reached.get(spool_id, 0)):
                fresh.append(delivery)
                reached[spool_id] = seq
        return fresh, reached

    def _check_sqlite_file(self) -> None:
        """A SQLite file deleted or replaced under the open connections: start again on a new one."""
        if self.sqlite_file is None or self.sqlite_inode is None:
            return
        try:
            inode: int | None = self.sqlite_file.stat().st_ino
        except FileNotFoundError:
            inode = None
        if inode != self.sqlite_inode:
            log.warning("event store file %s was deleted or replaced: creating it again", self.sqlite_file)
            self.engine.dispose()
            self.tables_ready = False
            self.progress.clear()  # what the old file said about the spools is gone with it
            self.sqlite_inode = None

    def _insert(self, connection: Connection, batch: list[RequestEvent | FeedbackEvent]) -> None:
        if self.sqlite is not None:
            self.sqlite.insert(connection, batch)
            return
        for table, rows in event_rows(batch).items():
            if rows:
                connection.execute(
                    insert(table), [dict(zip(COLUMNS[table], row, strict=True)) for row in rows]
                )


def _record_progress(connection: Connection, spool_id: str, seq: int) -> None:
    """Upsert the spool's last written seq (SQLite and PostgreSQL share ON CONFLICT)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect: Any = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(event_spools).values(spool_id=spool_id, last_seq=seq)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["spool_id"], set_={"last_seq": statement.excluded.last_seq}
        )
    )


def _as_is(value: Any) -> Any:
    return value


def event_rows(
    batch: Iterable[RequestEvent | FeedbackEvent],
    uuid_value: Callable[[Any], Any] = _as_is,
    time_value: Callable[[Any], Any] = _as_is,
    json_value: Callable[[Any], Any] = _as_is,
) -> dict[Table, list[tuple[Any, ...]]]:
    """The batch as rows of each table, in COLUMNS order; the `*_value` functions turn the
    UUID, time and JSON values into what the database driver takes (as they are for SQLAlchemy)."""
    requests: list[tuple[Any, ...]] = []
    recommendations: list[tuple[Any, ...]] = []
    feedback: list[tuple[Any, ...]] = []
    for item in batch:
        request_id = uuid_value(item.request_id)
        if isinstance(item, FeedbackEvent):
            feedback.append((request_id, item.track_id, item.event, time_value(item.time)))
            continue
        tracks = item.input_tracks
        requests.append(
            (
                request_id,
                time_value(item.time),
                item.endpoint,
                item.status,
                item.model_version,
                json_value(list(item.input_track_ids) if item.input_track_ids is not None else None),
                len(tracks) if tracks is not None else None,
                json_value([dict(row) for row in tracks] if tracks else None),
                item.k,
                round(item.latency_ms, 3),
            )
        )
        recommendations.extend((request_id, *recommended) for recommended in item.recommendations)
    return {requests_table: requests, recommendations_table: recommendations, feedback_table: feedback}


class SqliteInserts:
    """The three INSERTs for SQLite, compiled once, fed to sqlite3's executemany as tuples.

    The same values SQLAlchemy would bind (its own bind processors for the UUID, time and JSON
    columns; a test compares the stored rows), without its per-row parameter handling, which
    cost the writer about twice the CPU per event: CPU that on a small machine is taken from
    the API.
    """

    def __init__(self, dialect: Any) -> None:
        def processor(column: Column[Any]) -> Any:
            return column.type.dialect_impl(dialect).bind_processor(dialect) or _as_is

        self.uuid = processor(requests_table.c.request_id)
        self.time = processor(requests_table.c.time)
        self.json = processor(requests_table.c.input_track_ids)
        self.sql: dict[Table, str] = {}
        for table, names in COLUMNS.items():
            compiled = insert(table).compile(dialect=dialect, column_keys=list(names))
            if tuple(compiled.positiontup or ()) != names:  # the rows are in COLUMNS order
                raise RuntimeError(f"unexpected column order in {compiled}")
            self.sql[table] = str(compiled)

    def insert(self, connection: Any, batch: Iterable[RequestEvent | FeedbackEvent]) -> None:
        cursor = connection.connection.cursor()  # the DBAPI cursor, in the connection's transaction
        try:
            for table, rows in event_rows(batch, self.uuid, self.time, self.json).items():
                if rows:
                    cursor.executemany(self.sql[table], rows)
        finally:
            cursor.close()


# The columns the writer fills, in the order of `event_rows`' rows (feedback's id is the database's).
COLUMNS: dict[Table, tuple[str, ...]] = {
    requests_table: (
        "request_id",
        "time",
        "endpoint",
        "status",
        "model_version",
        "input_track_ids",
        "n_feature_tracks",
        "input_tracks",
        "k",
        "latency_ms",
    ),
    recommendations_table: ("request_id", "rank", "track_id", "score"),
    feedback_table: ("request_id", "track_id", "event", "time"),
}
