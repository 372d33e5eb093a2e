"""The request log: every served request, the tracks it returned, and the feedback on them.

Writes never happen on the request path: the API puts events on a bounded buffer; a shipper
thread appends them to a local spool file (store.spool, fsync'd on a short interval) and hands
them to a writer process (store.writer), which writes them in batches into the event store's
tables (store.schema). Nothing answered is lost uncounted: a store that is down keeps the events
in the buffer and the spool until it is back; a writer that dies is restarted and given again
what it had not written; an API process that dies leaves its spool to the next one to start.
Only a full buffer drops events, counted (songrec_events_dropped_total, by reason).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import os
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from songrec.store import spool
from songrec.store.burst import BurstHold
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
from songrec.store.writer import (
    BATCHES,
    COMMITTED,
    LOGGED,
    N_SHARED,
    UP,
    Delivery,
    WriterSettings,
    stop_signals_ignored,
    writer_main,
)

log = logging.getLogger(__name__)

SHIP_CHUNK = 10  # events per delivery to the writer process (one pipe write, one spool record)
PIPE_CHUNKS = 1_000  # deliveries on their way to the writer, at most


class EventStore:
    """Writes request and feedback events to a SQL database from a separate writer process.

    `log_request` and `log_feedback` never block and never raise: they pickle the event (after
    the response has gone; see `pack_event`) and append it to a bounded in-memory buffer, or
    count it as dropped when `queue_size` events are already waiting. Every `flush_interval` a
    shipper thread appends what gathered to the spool (in deliveries of SHIP_CHUNK events) and
    hands the deliveries to the writer process (one pipe write each); the writer writes a few
    at a time in one transaction and reports the last one it wrote, and only then are they
    forgotten here (and their spool file deleted). Each event is pickled as it comes, which
    spreads that work evenly. The writer is a process, not a thread, so that its Python and SQL
    work never holds this process's GIL, and it runs at the lowest CPU priority (SCHED_IDLE,
    else nice 19): requests get the CPU first.

    Faults: the shipper restarts a writer that died (within `flush_interval`) and hands it again
    whatever it had not written; the writer keeps trying a store that fails every
    `retry_seconds` (store_up 0 meanwhile) and recreates a deleted SQLite file; the spool
    (`spool_dir`; for a SQLite store, beside the file by default) is replayed by the next start
    when this process is killed, and the writer skips what it had already written.

    Bursts: while the API spends more than `busy_share` of its time answering requests, the
    shipper holds the deliveries (spooled: a kill loses none of them) for up to `hold_seconds`
    (or until half of `queue_size` waits) and hands them over when the burst ends, so that
    neither the hand-over nor the writes compete with the burst for the CPU. `flush` and `stop`
    hand everything over at once. 0 seconds: never hold.

    The writer is spawned (a fork of a threaded server is not safe), which imports the main
    module again: a script that starts the app needs an `if __name__ == "__main__":` guard.
    """

    def __init__(
        self,
        url: str,
        *,
        enabled: bool = True,
        queue_size: int = 100_000,
        batch_size: int = 1_000,
        flush_interval: float = 0.2,
        retry_seconds: float = 2.0,
        connect_timeout: float = 3.0,
        hold_seconds: float = 0.0,
        busy_share: float = 0.5,
        spool_dir: Path | None = None,
        spool_sync_seconds: float = 0.5,
    ) -> None:
        self.url = url
        self.enabled = enabled
        self.queue_size = queue_size
        self.settings = WriterSettings(url, batch_size, flush_interval, retry_seconds, connect_timeout)
        self.busy_share = busy_share
        self.spool_dir = spool_dir if spool_dir is not None else spool.beside_sqlite_file(url)
        self.spool_sync_seconds = spool_sync_seconds
        self._hold = BurstHold(hold_seconds, queue_size // 2)  # room for the rest of the burst
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._buffer: collections.deque[bytes] = collections.deque()  # pickled, not yet spooled
        self._pending: collections.deque[Delivery] = collections.deque()  # spooled, not handed over
        self._in_flight: collections.deque[Delivery] = collections.deque()  # handed over, not written
        self._orphans: dict[str, int] = {}  # replayed spools of dead processes -> their last delivery
        self._spool: spool.Spool | None = None
        self._next_delivery = 0
        self._next_seq = 0
        self._pipe: Any = None  # the multiprocessing queue of deliveries to the writer
        self._shared: Any = self._context.Array("q", N_SHARED, lock=False)
        self._shared[UP] = 1
        self._spooled = 0  # events pending or in flight
        self._dropped_full = 0  # events refused: the buffer was full
        self._dropped_stop = 0  # events neither written nor spooled when stopped
        self.writer_restarts = 0
        self.replayed = 0  # events replayed from the spools of processes that died
        self._busy_seconds = 0.0  # time spent answering the requests logged since the last look
        self.holding = False  # the shipper holds the events for a burst
        self._lock = threading.Lock()  # the buffer and the counters the request path changes
        self._ship_lock = threading.RLock()  # pending, in flight, the spool, the writer
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
        """Check the URL, replay dead processes' spools, start the writer and the shipper."""
        if not self.enabled or self._process is not None:
            return
        _ = self.engine  # a malformed URL or a missing driver fails here, at start
        if self.spool_dir is not None:
            try:
                self._replay_orphans(self.spool_dir)
                self._spool = spool.Spool(self.spool_dir, self.spool_sync_seconds)
            except OSError as exc:  # serve without it rather than not at all; say so
                log.warning(
                    "no request-log spool at %s (%s): a crash would lose what waits", self.spool_dir, exc
                )
        self._start_writer()
        self._stop.clear()
        self._shipper = threading.Thread(target=self._ship_forever, name="songrec-events-ship", daemon=True)
        self._shipper.start()

    def _start_writer(self) -> None:
        self._pipe = self._context.Queue(maxsize=PIPE_CHUNKS)
        self._process = self._context.Process(
            target=writer_main,
            args=(self.settings, self._pipe, self._shared, os.getpid()),
            name="songrec-events",
            daemon=True,
        )
        with stop_signals_ignored():  # inherited through exec: ignored from the writer's first step
            self._process.start()

    def stop(self, timeout: float = 4.0) -> None:
        """Spool what is buffered, let the writer write it (within `timeout`), then stop it.

        Bounded: what the writer has not written by then stays in the spool, for the next start.
        """
        if self._shipper is not None:
            self._stop.set()
            self._shipper.join(timeout)
            self._shipper = None
        if self._process is not None and not self.flush(timeout):
            left = self.queue_depth
            where = f"kept in the spool {self.spool_dir} for the next start" if self._spool else "lost"
            log.warning("%d events not written in %.0f s: %s", left, timeout, where)
            if self._spool is None:
                self._dropped_stop += left
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(queue.Full):
                self._pipe.put(None, timeout=1.0)  # the writer writes what it has, then exits
            process.join(timeout if self.queue_depth == 0 else 1.0)
            if process.is_alive():
                process.kill()  # ignores SIGTERM (see writer_main); the spool keeps its work
                process.join(5)
                self._pipe.cancel_join_thread()
            self._pipe.close()
            self._pipe.join_thread()
            self._pipe = None  # its semaphores go with it, not at interpreter exit
        with self._ship_lock:
            self._acknowledge()
            if self._spool is not None:
                self._spool.close()
                self._spool = None
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
        if self.queue_depth >= self.queue_size:  # a cheap first look: no pickling for a full buffer
            with self._lock:
                self._dropped_full += 1
            return
        pickled = pack_event(event)
        with self._lock:
            if self.queue_depth >= self.queue_size:
                self._dropped_full += 1
                return
            self._buffer.append(pickled)
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
                held = self.queue_depth
            busy_share = busy / max(now - looked, 1e-3)
            looked = now
            self.holding = self._hold.holds(busy_share > self.busy_share, held, now)
            try:
                self._ship(deliver=not self.holding)
            except Exception:  # the shipper must outlive any one round's surprise
                log.exception("the request log's shipper failed a round")

    def _ship(self, deliver: bool = True) -> None:
        """One round: restart a dead writer, forget what it wrote, spool the buffer, and (unless
        held) hand the writer as many deliveries as the pipe takes now."""
        with self._ship_lock:
            self._supervise()
            self._acknowledge()
            self._spool_buffer()
            if deliver:
                self._deliver()

    def _supervise(self) -> None:
        process = self._process
        if process is None or process.is_alive() or self._stop.is_set():
            return
        self.writer_restarts += 1
        log.warning(
            "the event writer died (exit code %s); starting another, %d deliveries to hand over again",
            process.exitcode,
            len(self._in_flight),
        )
        self._pipe.cancel_join_thread()
        self._pipe.close()
        self._acknowledge()  # what it wrote before it died
        self._pending.extendleft(reversed(self._in_flight))
        self._in_flight.clear()
        self._start_writer()

    def _acknowledge(self) -> None:
        committed = int(self._shared[COMMITTED])
        own_seq = 0
        while self._in_flight and self._in_flight[0][0] <= committed:
            delivery = self._in_flight.popleft()
            with self._lock:
                self._spooled -= len(delivery[3])
            if self._spool is not None and delivery[1] == self._spool.id:
                own_seq = delivery[2]
        if own_seq and self._spool is not None:
            self._spool.forget_through(own_seq)
        for spool_id, last in list(self._orphans.items()):
            if last <= committed and self.spool_dir is not None:
                spool.remove_spool(self.spool_dir, spool_id)
                del self._orphans[spool_id]

    def _spool_buffer(self) -> None:
        with self._lock:
            events = list(self._buffer)
            self._buffer.clear()
            self._spooled += len(events)
        records = []
        for start in range(0, len(events), SHIP_CHUNK):
            self._next_seq += 1
            records.append((self._next_seq, events[start : start + SHIP_CHUNK]))
        spool_id = ""
        if self._spool is not None:
            try:
                self._spool.append(records)
                self._spool.sync()
                spool_id = self._spool.id
            except OSError as exc:  # a full or unwritable disk: keep serving, unspooled
                log.warning("the request log's spool %s failed: %s; going on without it", self.spool_dir, exc)
                self._spool = None
        for seq, chunk in records:
            self._next_delivery += 1
            self._pending.append((self._next_delivery, spool_id, seq, chunk))

    def _deliver(self) -> None:
        if self._pipe is None:
            return
        while self._pending:
            try:
                self._pipe.put_nowait(self._pending[0])
            except queue.Full:  # the writer is behind: never wait for it
                return
            self._in_flight.append(self._pending.popleft())

    def _replay_orphans(self, directory: Path) -> None:
        """Queue the deliveries of spools whose process died; the writer skips what it wrote."""
        for spool_id, records in spool.orphan_records(directory):
            for seq, events in records:
                self._next_delivery += 1
                self._pending.append((self._next_delivery, spool_id, seq, events))
                self._spooled += len(events)
                self.replayed += len(events)
            self._orphans[spool_id] = self._next_delivery
            log.info(
                "replaying the spool of an earlier process (%s): %d events in all", spool_id, self.replayed
            )

    @property
    def stats(self) -> EventStats:
        shared = self._shared
        return EventStats(
            logged=int(shared[LOGGED]),
            dropped=self._dropped_full + self._dropped_stop,
            dropped_queue_full=self._dropped_full,
            dropped_shutdown=self._dropped_stop,
            batches=int(shared[BATCHES]),
            writer_restarts=self.writer_restarts,
            replayed=self.replayed,
        )

    @property
    def queue_depth(self) -> int:
        """Events accepted (or replayed) and not yet written."""
        return len(self._buffer) + self._spooled

    @property
    def available(self) -> bool:
        """False when logging is off, the writer is not running, or its last write failed."""
        process = self._process
        return self.enabled and process is not None and process.is_alive() and bool(self._shared[UP])

    def flush(self, timeout: float = 10.0) -> bool:
        """Hand over what is buffered and wait until the writer has written it all."""
        if self._process is None:
            return self.queue_depth == 0
        deadline = time.monotonic() + timeout
        while self.queue_depth:
            self._ship()  # held or not: all of it, as the pipe takes it
            if time.monotonic() > deadline:
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
