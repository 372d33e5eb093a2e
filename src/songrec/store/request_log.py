"""The request log: every served request, the tracks it returned, and the feedback on them.

Writes never happen on the request path: the API puts events on a bounded buffer and a writer
process (store.writer) writes them in batches into the event store's tables (store.schema).
When the buffer is full or the store is down, events are dropped and counted
(songrec_events_dropped_total in /metrics), and the API keeps answering.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import (
    Table,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from songrec.store.engine import make_engine
from songrec.store.events import (
    CLIENT_GONE,
    CLIENT_TIMEOUT,
    EventStats,
    FeedbackEvent,
    RequestEvent,
    pack_event,
)
from songrec.store.schema import requests_table
from songrec.store.writer import BATCHES, DROPPED_DOWN, LOGGED, PROCESSED, UP, WriterSettings, writer_main

log = logging.getLogger(__name__)

SHIP_CHUNK = 10  # events per delivery to the writer process (one pipe write)
PIPE_CHUNKS = 1_000  # deliveries on their way to the writer, at most


class EventStore:
    """Writes request and feedback events to a SQL database from a separate writer process.

    `log_request` and `log_feedback` never block and never raise: they pickle the event (after
    the response has gone; see `pack_event`) and append it to a bounded in-memory buffer, or
    count it as dropped when the buffer is full. Every `flush_interval` a shipper thread hands
    what gathered to the writer process in a few chunks (one pipe write per chunk, not per
    event); the writer writes each delivery in one transaction. Each event is pickled as it
    comes, which spreads that work evenly: a flush's worth pickled at once held the GIL while
    requests waited. The writer is a process, not a thread, so that its Python and SQL work
    never holds this process's GIL, and it runs at the lowest CPU priority (SCHED_IDLE, else
    nice 19): requests get the CPU first. When a write fails (store down, tables not creatable)
    the events are dropped and counted, and the store is not tried again for `retry_seconds`.
    Reads (`count`, `has_request`) use this process's own connections.

    Bursts: while the API spends more than `busy_share` of its time answering requests, the
    shipper holds the events in the buffer for up to `hold_seconds` (or until it holds half of
    `queue_size`) and hands them over when the burst ends, so that neither the hand-over nor
    the writes compete with the burst for the CPU (on two CPUs they showed in /recommend's p99
    at full speed; bench/serving.py measures it). After its hold, a burst is written as it
    comes. `flush` and `stop` hand everything over at once. 0 seconds: never hold.

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
        self.settings = WriterSettings(url, batch_size, flush_interval, retry_seconds, connect_timeout)
        self.busy_share = busy_share
        self._hold = BurstHold(hold_seconds, queue_size // 2)  # room for the rest of the burst
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._buffer: collections.deque[bytes] = collections.deque()  # pickled events
        self._pipe: Any = None  # the multiprocessing queue of chunks to the writer
        self._shared: Any = self._context.Array("q", 5, lock=False)
        self._shared[UP] = 1
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
            target=writer_main,
            args=(self.settings, self._pipe, self._shared, os.getpid()),
            name="songrec-events",
            daemon=True,
        )
        with _stop_signals_ignored():  # inherited through exec: ignored from the writer's first step
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
        pickled = pack_event(event)
        with self._lock:
            if len(self._buffer) >= self.queue_size:
                self._dropped_full += 1
                return
            self._buffer.append(pickled)
            self._accepted += 1
            # A request that waited on its client (a slow body) kept nothing busy: counted as
            # busy time, a crowd of slow clients switched the burst hold on.
            if isinstance(event, RequestEvent) and event.status not in (CLIENT_TIMEOUT, CLIENT_GONE):
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
            logged=int(shared[LOGGED]),
            dropped=int(shared[DROPPED_DOWN]) + self._dropped_full,
            dropped_queue_full=self._dropped_full,
            dropped_store_down=int(shared[DROPPED_DOWN]),
            batches=int(shared[BATCHES]),
        )

    @property
    def queue_depth(self) -> int:
        """Events accepted and not yet written or dropped."""
        return max(self._accepted - int(self._shared[PROCESSED]), 0)

    @property
    def available(self) -> bool:
        """False when logging is off, the writer is not running, or its last write failed."""
        process = self._process
        return self.enabled and process is not None and process.is_alive() and bool(self._shared[UP])

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


@contextlib.contextmanager
def _stop_signals_ignored() -> Iterator[None]:
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
