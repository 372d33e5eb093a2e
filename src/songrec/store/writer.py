"""The request log's writer process: deliveries from the API process written in batches.

Runs at the lowest CPU priority so that requests get the CPU first; counts what it wrote and
what it dropped in counters it shares with the API process (read by /metrics).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Table,
    insert,
)

from songrec.store.engine import make_engine, safe_url
from songrec.store.events import FeedbackEvent, RequestEvent, unpack_event
from songrec.store.schema import feedback_table, metadata, recommendations_table, requests_table

log = logging.getLogger(__name__)

# Counters the writer process shares with the API process (int64, written by the writer only).
PROCESSED, LOGGED, DROPPED_DOWN, BATCHES, UP = range(5)


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
            if os.getppid() != parent:  # the API process is gone
                break
            continue
        batch: list[RequestEvent | FeedbackEvent] = []
        for chunk in _take_available(chunks, first, settings.batch_size):
            if chunk is None:
                stopping = True
            else:
                batch.extend(unpack_event(event) for event in chunk)
        if batch:
            writer.write(batch)
    writer.engine.dispose()


def _take_available(chunks: Any, first: Any, limit: int) -> Iterator[Any]:
    """`first`, then the chunks already delivered, up to about `limit` events."""
    yield first
    taken = len(first or ())
    while taken < limit:
        try:
            chunk = chunks.get_nowait()
        except queue.Empty:
            return
        yield chunk
        if chunk is None:
            return
        taken += len(chunk)


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
        self.tables_ready = False
        self.retry_at = 0.0
        self.last_error: str | None = None

    def write(self, batch: list[RequestEvent | FeedbackEvent]) -> None:
        try:
            if time.monotonic() < self.retry_at:
                self.shared[DROPPED_DOWN] += len(batch)
                return
            try:
                self._insert(batch)
            except Exception as exc:  # the store's failure must never reach a request
                self.retry_at = time.monotonic() + self.settings.retry_seconds
                message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if self.last_error is None:
                    url = safe_url(self.settings.url)
                    log.warning("event store %s is unavailable, dropping events: %s", url, message)
                self.last_error = message
                self.shared[UP] = 0
                self.shared[DROPPED_DOWN] += len(batch)
                return
            if self.last_error is not None:
                log.info("event store %s is available again", safe_url(self.settings.url))
            self.last_error = None
            self.shared[UP] = 1
            self.shared[LOGGED] += len(batch)
            self.shared[BATCHES] += 1
        finally:
            self.shared[PROCESSED] += len(batch)

    def _insert(self, batch: list[RequestEvent | FeedbackEvent]) -> None:
        if not self.tables_ready:
            metadata.create_all(self.engine, checkfirst=True)
            self.tables_ready = True
        if self.sqlite is not None:
            with self.engine.begin() as connection:
                self.sqlite.insert(connection, batch)
            return
        with self.engine.begin() as connection:
            for table, rows in event_rows(batch).items():
                if rows:
                    connection.execute(
                        insert(table), [dict(zip(COLUMNS[table], row, strict=True)) for row in rows]
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
