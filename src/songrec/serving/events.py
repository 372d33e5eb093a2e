"""The event store: every served request, the tracks it returned, and the feedback on them.

One SQLAlchemy MetaData holds the tables (SQLite file by default, PostgreSQL by URL); the
monitoring work adds its own tables to the same `metadata` and reads these ones. Writes never
happen on the request path: the API puts events on a bounded queue and a writer process
writes them in batches. When the queue is full or the store is down, events are dropped
and counted (songrec_events_dropped_total in /metrics), and the API keeps answering.

Tables:
- requests: one row per API request (request_id, time in UTC, endpoint, HTTP status, model
  version, input track ids, the feature rows sent, k, latency);
- recommendations: the ranked tracks a /recommend request returned (request_id, rank, track_id,
  score);
- feedback: play, skip, like or dislike of a track, joined to its request by request_id.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from songrec.errors import ConfigError

log = logging.getLogger(__name__)

FEEDBACK_EVENTS = ("play", "skip", "like", "dislike")
SHIP_CHUNK = 10  # events per delivery to the writer process (one pipe write)
PIPE_CHUNKS = 1_000  # deliveries on their way to the writer, at most

metadata = MetaData()

requests_table = Table(
    "requests",
    metadata,
    Column("request_id", Uuid(as_uuid=True), primary_key=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),  # UTC
    Column("endpoint", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("model_version", String(64)),
    Column("input_track_ids", JSON(none_as_null=True)),  # the catalog ids the request named, as sent
    Column("n_feature_tracks", Integer),
    Column(
        "input_tracks", JSON(none_as_null=True)
    ),  # the feature rows sent for tracks the catalog may not know
    Column("k", Integer),
    Column("latency_ms", Float, nullable=False),
)

recommendations_table = Table(
    "recommendations",
    metadata,
    Column("request_id", Uuid(as_uuid=True), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("track_id", String(64), nullable=False, index=True),
    Column("score", Float, nullable=False),
)

feedback_table = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Uuid(as_uuid=True), nullable=False, index=True),
    Column("track_id", String(64), nullable=False),
    Column("event", String(16), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False, index=True),  # UTC
)


def new_request_id() -> uuid.UUID:
    """A time-ordered UUID (the version 7 layout: milliseconds since the epoch, then random bits).

    Request ids key the requests and recommendations tables; ids that grow with time land at
    the end of those indexes instead of at random pages, which keeps writes cheap as tables grow.
    """
    millis = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")
    value = (millis & (2**48 - 1)) << 80 | 0x7 << 76 | (random >> 62 & 0xFFF) << 64 | 0b10 << 62
    return uuid.UUID(int=value | random & (2**62 - 1))


@dataclass(frozen=True)
class RequestEvent:
    """One served request, as the requests table (and, for /recommend, recommendations) keep it."""

    request_id: uuid.UUID
    endpoint: str
    status: int
    latency_ms: float
    model_version: str | None = None
    input_track_ids: Sequence[str] | None = None
    input_tracks: Sequence[Mapping[str, Any]] | None = None
    k: int | None = None
    recommendations: Sequence[tuple[int, str, float]] = ()  # (rank, track_id, score)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class FeedbackEvent:
    request_id: uuid.UUID
    track_id: str
    event: str
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class EventStats:
    """What the store did with the events it was given (read by /metrics)."""

    logged: int = 0
    dropped: int = 0
    dropped_queue_full: int = 0
    dropped_store_down: int = 0
    batches: int = 0


# Counters the writer process shares with the API process (int64, written by the writer only).
_PROCESSED, _LOGGED, _DROPPED_DOWN, _BATCHES, _UP = range(5)


@dataclass(frozen=True)
class _WriterSettings:
    url: str
    batch_size: int
    flush_interval: float
    retry_seconds: float
    connect_timeout: float


class EventStore:
    """Writes request and feedback events to a SQL database from a separate writer process.

    `log_request` and `log_feedback` never block and never raise: they pickle the event (5
    microseconds, after the response has gone; see `_pack`) and append it to a bounded in-memory buffer,
    or count it as dropped when the buffer is full. Every `flush_interval` a shipper thread
    hands what gathered to the writer process in a few chunks (one pipe write per chunk, not
    per event); the writer writes each delivery in one transaction. Pickling each event as it
    comes spreads that work evenly: pickled a flush's worth at a time (2 ms at 350 requests/s,
    in 0.3 ms pieces) it held the GIL while requests waited. The writer is a process, not a
    thread, so that its Python and SQL work never holds this process's GIL, and it runs at the
    lowest CPU priority (SCHED_IDLE, else nice 19): requests get the CPU first. When a write
    fails (store down, tables not creatable) the events are dropped and counted, and the store
    is not tried again for `retry_seconds`. Reads (`count`, `has_request`) use this process's own connections.

    Bursts: while the API spends more than `busy_share` of its time answering requests, the
    shipper holds the events in the buffer for up to `hold_seconds` (or until it holds half of
    `queue_size`) and hands them over when the burst ends, so that neither the hand-over nor
    the writes compete with the burst for the CPU (on a 2-CPU machine they cost /recommend's
    p99 +20 to +200 % at full speed). After its hold, a burst is written as it comes. `flush`
    and `stop` hand everything over at once. 0 seconds: never hold.

    The writer starts with multiprocessing's "spawn" method (a fork of a threaded server is not
    safe), which imports the main module again in the writer: a script that starts the app
    itself needs the usual `if __name__ == "__main__":` guard (songrec serve, uvicorn and
    pytest have it).
    """

    def __init__(
        self,
        url: str,
        *,
        enabled: bool = True,
        queue_size: int = 100_000,
        batch_size: int = 1_000,
        flush_interval: float = 0.2,
        retry_seconds: float = 5.0,
        connect_timeout: float = 3.0,
        hold_seconds: float = 0.0,
        busy_share: float = 0.5,
    ) -> None:
        self.url = url
        self.enabled = enabled
        self.queue_size = queue_size
        self.settings = _WriterSettings(url, batch_size, flush_interval, retry_seconds, connect_timeout)
        self.busy_share = busy_share
        self._hold = BurstHold(hold_seconds, queue_size // 2)  # room for the rest of the burst
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._buffer: collections.deque[bytes] = collections.deque()  # pickled events
        self._pipe: Any = None  # the multiprocessing queue of chunks to the writer
        self._shared: Any = self._context.Array("q", 5, lock=False)
        self._shared[_UP] = 1
        self._accepted = 0  # events taken into the buffer
        self._dropped_full = 0  # events refused: the buffer was full
        self._busy_seconds = 0.0  # time spent answering the requests logged since the last look
        self.holding = False  # the shipper holds the events for a burst
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._shipper: threading.Thread | None = None
        self._engine: Engine | None = None
        self._process: Any = None

    # ----------------------------------------------------------------------- life cycle

    @property
    def engine(self) -> Engine:
        """This process's engine, for reading."""
        if self._engine is None:
            self._engine = make_engine(self.url, self.settings.connect_timeout)
        return self._engine

    def start(self) -> None:
        """Check the URL, start the writer process (it creates the tables) and the shipper."""
        if not self.enabled or self._process is not None:
            return
        _ = self.engine  # a malformed URL or a missing driver fails here, at start
        self._pipe = self._context.Queue(maxsize=PIPE_CHUNKS)
        self._process = self._context.Process(
            target=_writer_main,
            args=(self.settings, self._pipe, self._shared, os.getpid()),
            name="songrec-events",
            daemon=True,
        )
        self._process.start()
        self._stop.clear()
        self._shipper = threading.Thread(target=self._ship_forever, name="songrec-events-ship", daemon=True)
        self._shipper.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Hand over what is buffered, let the writer write it (within `timeout`), then stop it."""
        if self._shipper is not None:
            self._stop.set()
            self._shipper.join(timeout)
            self._shipper = None
        if self._process is not None and not self.flush(timeout):
            log.warning("%d events not written in %.0f s: lost", self.queue_depth, timeout)
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(queue.Full):
                self._pipe.put(None, timeout=timeout)  # the writer writes what it has, then exits
            process.join(timeout)
            if process.is_alive():
                log.warning("the event writer did not stop in %.0f s; stopping it", timeout)
                process.terminate()
                process.join(5)
                self._pipe.cancel_join_thread()
            self._pipe.close()
            self._pipe.join_thread()
            self._pipe = None  # its semaphores go with it, not at interpreter exit
        if self._engine is not None:
            self._engine.dispose()

    def create_tables(self) -> None:
        metadata.create_all(self.engine, checkfirst=True)

    # ----------------------------------------------------------------------- the API side

    def log_request(self, event: RequestEvent) -> None:
        self._put(event)

    def log_feedback(self, event: FeedbackEvent) -> None:
        self._put(event)

    def _put(self, event: RequestEvent | FeedbackEvent) -> None:
        if not self.enabled:
            return
        if len(self._buffer) >= self.queue_size:  # a cheap first look: no pickling for a full buffer
            with self._lock:
                self._dropped_full += 1
            return
        pickled = _pack(event)
        with self._lock:
            if len(self._buffer) >= self.queue_size:
                self._dropped_full += 1
                return
            self._buffer.append(pickled)
            self._accepted += 1
            if isinstance(event, RequestEvent):
                self._busy_seconds += event.latency_ms / 1000.0

    def _ship_forever(self) -> None:
        looked = time.monotonic()
        while not self._stop.wait(self.settings.flush_interval):
            now = time.monotonic()
            with self._lock:
                busy, self._busy_seconds = self._busy_seconds, 0.0
                held = len(self._buffer)
            busy_share = busy / max(now - looked, 1e-3)
            looked = now
            self.holding = self._hold.holds(busy_share > self.busy_share, held, now)
            if not self.holding:
                self._ship()

    def _ship(self) -> None:
        """Hand the buffered events to the writer, in chunks, as many as the pipe takes now; the
        rest waits in the buffer for the next round (the buffer's bound is what drops events)."""
        if self._pipe is None:
            return
        while True:
            with self._lock:
                chunk = [self._buffer.popleft() for _ in range(min(SHIP_CHUNK, len(self._buffer)))]
            if not chunk:
                return
            try:
                self._pipe.put_nowait(chunk)
            except queue.Full:  # the writer is behind: never wait for it
                with self._lock:
                    self._buffer.extendleft(reversed(chunk))
                return

    @property
    def stats(self) -> EventStats:
        shared = self._shared
        return EventStats(
            logged=int(shared[_LOGGED]),
            dropped=int(shared[_DROPPED_DOWN]) + self._dropped_full,
            dropped_queue_full=self._dropped_full,
            dropped_store_down=int(shared[_DROPPED_DOWN]),
            batches=int(shared[_BATCHES]),
        )

    @property
    def queue_depth(self) -> int:
        """Events accepted and not yet written or dropped."""
        return max(self._accepted - int(self._shared[_PROCESSED]), 0)

    @property
    def available(self) -> bool:
        """False when logging is off, the writer is not running, or its last write failed."""
        process = self._process
        return self.enabled and process is not None and process.is_alive() and bool(self._shared[_UP])

    def flush(self, timeout: float = 10.0) -> bool:
        """Hand over what is buffered and wait until the writer has written or dropped it all."""
        if self._process is None:
            return self.queue_depth == 0
        deadline = time.monotonic() + timeout
        while self.queue_depth:
            self._ship()  # held or not: all of it, as the pipe takes it
            if time.monotonic() > deadline or not self._process.is_alive():
                return False
            time.sleep(0.01)
        return True

    # ----------------------------------------------------------------------- reading

    def count(self, table: Table, **equal: Any) -> int:
        """Rows of `table` (optionally where column == value)."""
        query = select(func.count()).select_from(table)
        for name, value in equal.items():
            query = query.where(table.c[name] == value)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def has_request(self, request_id: uuid.UUID) -> bool | None:
        """Whether the request is in the store; None when the store cannot tell (off or down)."""
        if not self.available:
            return None
        try:
            with self.engine.connect() as connection:
                found = connection.execute(
                    select(requests_table.c.request_id).where(requests_table.c.request_id == request_id)
                ).first()
        except SQLAlchemyError:
            return None
        return found is not None


def make_engine(url: str, connect_timeout: float = 3.0) -> Engine:
    """An engine for the event store URL: SQLite (its folder created, WAL) or a server."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"event store URL {url!r} (SONGREC_EVENT_STORE_URL): {exc}") from exc
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args["timeout"] = connect_timeout
    elif parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = max(1, round(connect_timeout))
    try:
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"event store URL {_safe(url)} (SONGREC_EVENT_STORE_URL): {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        # WAL lets readers (monitoring, dashboards) read while the API writes.
        event.listen(engine, "connect", _sqlite_wal)
    return engine


# --------------------------------------------------------------------------- the writer process


def _writer_main(settings: _WriterSettings, chunks: Any, shared: Any, parent: int) -> None:
    """The writer process: deliveries from the API process to the database until told to stop."""
    # Stopped by the API (a None after the last chunk), not by the signals that stop the server:
    # a SIGTERM to the whole process group must not lose what is still to be written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _lowest_priority()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    writer = _Writer(settings, shared)
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
                batch.extend(_unpack(event) for event in chunk)
        if batch:
            writer.write(batch)
    writer.engine.dispose()


class BurstHold:
    """Whether the shipper holds the events: while the API is busy, for at most `seconds` and
    `max_held` events per burst; after that, until the burst ends, they go as they come."""

    def __init__(self, seconds: float, max_held: int) -> None:
        self.seconds = seconds
        self.max_held = max_held
        self.since: float | None = None  # when the current burst began
        self.spent = False  # the current burst has used its hold

    def holds(self, busy: bool, held: int, now: float) -> bool:
        if not busy:
            self.since, self.spent = None, False
            return False
        if self.since is None:
            self.since = now
        if self.spent or now - self.since >= self.seconds or held >= self.max_held:
            self.spent = True
            return False
        return True


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _pack(event: RequestEvent | FeedbackEvent) -> bytes:
    """The event pickled as plain values: 5 microseconds, where pickling the dataclass with its
    UUID and datetime took 29. At concurrency 1 this is on the path to the next request."""
    moment = (event.time - _EPOCH) // _MICROSECOND  # exact, where a float timestamp is not
    if isinstance(event, FeedbackEvent):
        return pickle.dumps((False, event.request_id.bytes, event.track_id, event.event, moment))
    return pickle.dumps(
        (
            True,
            event.request_id.bytes,
            event.endpoint,
            event.status,
            event.latency_ms,
            event.model_version,
            event.input_track_ids,
            event.input_tracks,
            event.k,
            event.recommendations,
            moment,
        )
    )


def _unpack(data: bytes) -> RequestEvent | FeedbackEvent:
    values = pickle.loads(data)
    request_id, when = uuid.UUID(bytes=values[1]), _EPOCH + values[-1] * _MICROSECOND
    if not values[0]:
        return FeedbackEvent(request_id, values[2], values[3], time=when)
    endpoint, status, latency_ms, version, track_ids, tracks, k, recommendations = values[2:-1]
    return RequestEvent(
        request_id, endpoint, status, latency_ms, version, track_ids, tracks, k, recommendations, time=when
    )


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


class _Writer:
    def __init__(self, settings: _WriterSettings, shared: Any) -> None:
        self.settings = settings
        self.shared = shared
        self.engine = make_engine(settings.url, settings.connect_timeout)
        self.sqlite = _SqliteInserts(self.engine.dialect) if self.engine.dialect.name == "sqlite" else None
        self.tables_ready = False
        self.retry_at = 0.0
        self.last_error: str | None = None

    def write(self, batch: list[RequestEvent | FeedbackEvent]) -> None:
        try:
            if time.monotonic() < self.retry_at:
                self.shared[_DROPPED_DOWN] += len(batch)
                return
            try:
                self._insert(batch)
            except Exception as exc:  # the store's failure must never reach a request
                self.retry_at = time.monotonic() + self.settings.retry_seconds
                message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if self.last_error is None:
                    url = _safe(self.settings.url)
                    log.warning("event store %s is unavailable, dropping events: %s", url, message)
                self.last_error = message
                self.shared[_UP] = 0
                self.shared[_DROPPED_DOWN] += len(batch)
                return
            if self.last_error is not None:
                log.info("event store %s is available again", _safe(self.settings.url))
            self.last_error = None
            self.shared[_UP] = 1
            self.shared[_LOGGED] += len(batch)
            self.shared[_BATCHES] += 1
        finally:
            self.shared[_PROCESSED] += len(batch)

    def _insert(self, batch: list[RequestEvent | FeedbackEvent]) -> None:
        if not self.tables_ready:
            metadata.create_all(self.engine, checkfirst=True)
            self.tables_ready = True
        if self.sqlite is not None:
            with self.engine.begin() as connection:
                self.sqlite.insert(connection, batch)
            return
        with self.engine.begin() as connection:
            for table, rows in _rows(batch).items():
                if rows:
                    connection.execute(
                        insert(table), [dict(zip(COLUMNS[table], row, strict=True)) for row in rows]
                    )


# The columns the writer fills, in the order of the rows `_rows` builds (feedback's id is the database's).
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


def _as_is(value: Any) -> Any:
    return value


def _rows(
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


class _SqliteInserts:
    """The three INSERTs for SQLite, compiled once, fed to sqlite3's executemany as tuples.

    The same values SQLAlchemy would bind (its own bind processors for the UUID, time and JSON
    columns; a test compares the stored rows), without its per-row parameter handling: the
    writer spends 45 instead of 100 microseconds of CPU per /recommend event (10 ranked
    tracks), CPU that on a small machine is taken from the API.
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
            for table, rows in _rows(batch, self.uuid, self.time, self.json).items():
                if rows:
                    cursor.executemany(self.sql[table], rows)
        finally:
            cursor.close()


def _sqlite_wal(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable at checkpoints, never corrupt
    cursor.close()


def _safe(url: str) -> str:
    """The URL without its password, for logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"
