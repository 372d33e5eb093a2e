"""The event store on SQLite and on the machine's real PostgreSQL; logging never fails or blocks."""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from songrec.config.stage_configs import ServeConfig
from songrec.core.errors import ConfigError
from songrec.models.bundle import SongrecBundle
from songrec.serving.app import create_app
from songrec.store import request_log as events_module
from songrec.store.burst import BurstHold
from songrec.store.events import FeedbackEvent, RequestEvent, new_request_id, pack_event, unpack_event
from songrec.store.request_log import EventStore
from songrec.store.schema import feedback_table, metadata, recommendations_table, requests_table
from songrec.store.writer import N_SHARED, BatchWriter, WriterSettings
from tests.conftest import free_port
from tests.serving.conftest import MemorySource, playlist_ids


def _exercise(store: EventStore) -> None:
    """Write requests, recommendations and feedback through the queue; read them back, joined."""
    store.start()
    answered = uuid.uuid4()
    store.log_request(
        RequestEvent(
            request_id=answered,
            endpoint="/recommend",
            status=200,
            latency_ms=3.5,
            model_version="4",
            input_track_ids=["a" * 22, "b" * 22],
            input_tracks=[{"energy": 0.5, "year": 2001}],
            k=2,
            recommendations=[(1, "c" * 22, 0.9), (2, "d" * 22, 0.8)],
        )
    )
    refused = uuid.uuid4()
    store.log_request(RequestEvent(request_id=refused, endpoint="/recommend", status=422, latency_ms=0.4))
    store.log_feedback(FeedbackEvent(request_id=answered, track_id="c" * 22, event="like"))
    assert store.flush()
    assert store.stats.logged == 3 and store.stats.dropped == 0
    assert store.count(requests_table) == 2
    assert store.count(recommendations_table, request_id=answered) == 2
    assert store.has_request(answered) is True and store.has_request(uuid.uuid4()) is False
    with store.engine.connect() as connection:
        row = (
            connection.execute(select(requests_table).where(requests_table.c.request_id == answered))
            .mappings()
            .one()
        )
        joined = connection.execute(
            select(feedback_table.c.event, recommendations_table.c.rank, requests_table.c.model_version)
            .join(requests_table, requests_table.c.request_id == feedback_table.c.request_id)
            .join(
                recommendations_table,
                (recommendations_table.c.request_id == feedback_table.c.request_id)
                & (recommendations_table.c.track_id == feedback_table.c.track_id),
            )
        ).all()
        empty = (
            connection.execute(select(requests_table).where(requests_table.c.request_id == refused))
            .mappings()
            .one()
        )
    assert row["input_track_ids"] == ["a" * 22, "b" * 22]
    assert row["input_tracks"] == [{"energy": 0.5, "year": 2001}] and row["n_feature_tracks"] == 1
    assert (row["endpoint"], row["status"], row["k"], row["latency_ms"]) == ("/recommend", 200, 2, 3.5)
    assert [tuple(r) for r in joined] == [("like", 1, "4")]
    assert empty["input_track_ids"] is None and empty["model_version"] is None
    store.stop()


def test_the_sqlite_store(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = EventStore(f"sqlite:///{tmp_path / 'var' / 'events.db'}", flush_interval=0.05)
    _exercise(store)
    assert (tmp_path / "var" / "events.db").is_file()  # its folder is created on start


def test_a_burst_is_held_for_its_hold_then_written_as_it_comes() -> None:
    hold = BurstHold(seconds=30.0, max_held=1_000)
    assert not hold.holds(busy=False, held=5, now=0.0)  # quiet: write
    assert hold.holds(busy=True, held=5, now=1.0)  # a burst begins
    assert hold.holds(busy=True, held=900, now=30.9)
    assert not hold.holds(busy=True, held=900, now=31.0)  # its 30 s are spent
    assert not hold.holds(busy=True, held=0, now=32.0)  # and stay spent while the burst lasts
    assert not hold.holds(busy=False, held=0, now=33.0)
    assert hold.holds(busy=True, held=0, now=34.0)  # a new burst holds again
    assert not hold.holds(busy=True, held=1_000, now=35.0)  # too many held
    assert not BurstHold(seconds=0.0, max_held=1_000).holds(busy=True, held=1, now=0.0)


def test_the_writer_holds_its_writes_while_the_api_is_busy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Requests whose latencies fill the time are a busy API: their events wait in its buffer
    (counted in queue_depth), and are written once the requests stop; flush writes at once."""
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}", flush_interval=0.2, hold_seconds=60.0)
    store.start()
    try:

        def burst(seconds: float) -> tuple[int, int]:
            """Events sent, and events written by the burst's end."""
            sent, end = 0, time.monotonic() + seconds
            while time.monotonic() < end:  # each says it took 1 s: any one makes a 0.2 s look busy
                store.log_request(RequestEvent(uuid.uuid4(), "/recommend", 200, latency_ms=1000.0))
                sent += 1
                time.sleep(0.005)
            return sent, store.stats.logged

        sent, written = burst(1.5)
        assert written == 0 and store.queue_depth == sent  # held, not lost
        assert store.holding
        deadline = time.monotonic() + 10
        while store.stats.logged < sent and time.monotonic() < deadline:  # the burst is over
            time.sleep(0.05)
        assert store.stats.logged == sent and store.count(requests_table) == sent
        assert not store.holding
        more, written = burst(1.0)
        assert written == sent
        assert store.flush(timeout=10)
        assert store.stats.logged == sent + more and store.queue_depth == 0
    finally:
        store.stop()


@pytest.mark.slow
def test_the_postgresql_store(postgres_url: str) -> None:
    _exercise(EventStore(postgres_url, flush_interval=0.05))


@pytest.mark.slow
def test_the_api_logs_to_postgresql(
    postgres_url: str, serve_config: ServeConfig, bundle: SongrecBundle
) -> None:
    import dataclasses

    config = dataclasses.replace(serve_config, event_store_url=postgres_url)
    app = create_app(config, model_source=MemorySource({"1": bundle}, "1"))
    with TestClient(app) as client:
        answer = client.post("/recommend", json={"track_ids": playlist_ids(bundle), "k": 5}).json()
        feedback = {"request_id": answer["request_id"], "track_id": answer["recommendations"][0]["track_id"]}
        assert client.post("/feedback", json={**feedback, "event": "skip"}).status_code == 202
        events: EventStore = app.state.services.events
        assert events.flush()
        assert events.count(recommendations_table, request_id=uuid.UUID(answer["request_id"])) == 5
        assert events.count(feedback_table) == 1


def test_a_store_that_is_down_never_fails_a_request_and_loses_nothing(
    serve_config: ServeConfig, bundle: SongrecBundle, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    spool_dir = tmp_path / "spool"
    events = EventStore(closed, flush_interval=0.02, retry_seconds=0.2, spool_dir=spool_dir)
    app = create_app(serve_config, model_source=MemorySource({"1": bundle}, "1"), events=events)
    with TestClient(app) as client:
        for _ in range(20):
            response = client.post("/recommend", json={"track_ids": playlist_ids(bundle), "k": 3})
            assert response.status_code == 200
        assert not events.flush(timeout=1.0)  # kept, waiting for the store
        assert (events.queue_depth, events.stats.dropped, events.stats.logged) == (20, 0, 0)
        metrics = client.get("/metrics").text
    assert "songrec_events_dropped_total 0.0" in metrics
    assert "songrec_event_store_up 0.0" in metrics
    # Stopped with the store still down: the spool keeps the events for the next start, which
    # (here on a store that works) writes them.
    assert list(spool_dir.glob("*.spool"))
    later = EventStore(f"sqlite:///{tmp_path / 'events.db'}", flush_interval=0.02, spool_dir=spool_dir)
    later.start()
    try:
        assert later.flush(timeout=30)
        assert later.count(requests_table, endpoint="/recommend") == 20 and later.stats.replayed == 20
    finally:
        later.stop()
    assert not list(spool_dir.glob("*.spool")) and not list(spool_dir.glob("*.lock"))


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections (the kernel does) and never answers: a hung database."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@pytest.mark.slow
def test_a_hung_store_never_slows_a_request(serve_config: ServeConfig, bundle: SongrecBundle) -> None:
    with silent_server() as port:
        events = EventStore(
            f"postgresql+psycopg://postgres@127.0.0.1:{port}/db", flush_interval=0.02, connect_timeout=2
        )
        app = create_app(
            serve_config,
            model_source=MemorySource({"1": bundle}, "1"),
            events=events,
        )
        with TestClient(app) as client:
            client.post("/recommend", json={"track_ids": playlist_ids(bundle), "k": 3})  # warm up
            slowest = 0.0
            started = time.monotonic()
            while time.monotonic() - started < 3:  # longer than the store's connect timeout
                began = time.perf_counter()
                assert (
                    client.post("/recommend", json={"track_ids": playlist_ids(bundle), "k": 3}).status_code
                    == 200
                )
                slowest = max(slowest, time.perf_counter() - began)
            deadline = time.monotonic() + 20
            while events.stats.dropped == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
    assert slowest < 1.0, f"a request took {slowest:.2f} s while the store hung"
    # Kept until the store answers; stopped without a spool (none given), counted as lost at stop.
    assert events.stats.dropped == events.stats.dropped_shutdown == events.queue_depth > 0


def test_a_writer_behind_slows_the_hand_over_and_loses_nothing(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """When the pipe to the writer is full the events wait in the buffer (its bound is what
    drops): 2 deliveries of 10 in flight at most, 500 events, all written; 300 more by stop."""
    monkeypatch.setattr(events_module, "PIPE_CHUNKS", 2)
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}", flush_interval=0.01)
    store.start()
    try:
        for _ in range(500):
            store.log_request(RequestEvent(uuid.uuid4(), "/recommend", 200, latency_ms=0.1))
        assert store.flush(timeout=30)
        assert (store.stats.logged, store.stats.dropped) == (500, 0)
        assert store.count(requests_table) == 500
        for _ in range(300):
            store.log_request(RequestEvent(uuid.uuid4(), "/recommend", 200, latency_ms=0.1))
    finally:
        store.stop()  # hands over and writes what is left
    assert store.count(requests_table) == 800


def test_a_full_queue_drops_and_counts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}", queue_size=3)  # not started: nothing drains
    for _ in range(5):
        store.log_request(
            RequestEvent(request_id=uuid.uuid4(), endpoint="/recommend", status=200, latency_ms=1)
        )
    assert store.queue_depth == 3
    assert (store.stats.dropped, store.stats.dropped_queue_full) == (2, 2)


def test_logging_can_be_switched_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}", enabled=False)
    store.start()
    store.log_request(RequestEvent(request_id=uuid.uuid4(), endpoint="/recommend", status=200, latency_ms=1))
    assert store.queue_depth == 0 and store.stats.dropped == 0
    assert store.has_request(uuid.uuid4()) is None
    store.stop()
    assert not (tmp_path / "events.db").exists()


@pytest.mark.parametrize("url", ["not a url", "nosuchdialect://host/db"])
def test_a_bad_store_url_fails_at_start(url: str) -> None:
    with pytest.raises(ConfigError, match="SONGREC_EVENT_STORE_URL"):
        EventStore(url).start()


def test_events_reach_the_writer_process_unchanged() -> None:
    when = datetime(2026, 11, 30, 3, 4, 5, 678901, tzinfo=UTC)  # microseconds a float would lose
    request = RequestEvent(
        new_request_id(),
        "/recommend",
        200,
        2.25,
        "3",
        ["a" * 22],
        [{"energy": 0.5}],
        5,
        [(1, "b" * 22, 0.9)],
        when,
    )
    feedback = FeedbackEvent(request.request_id, "b" * 22, "like", when)
    for event in (request, feedback):
        assert unpack_event(pack_event(event)) == event


def test_the_sqlite_fast_path_stores_what_sqlalchemy_stores(tmp_path) -> None:  # type: ignore[no-untyped-def]
    when = datetime(2026, 11, 30, 3, 4, 5, 678901, tzinfo=UTC)
    answered = new_request_id()
    batch: list[RequestEvent | FeedbackEvent] = [
        RequestEvent(
            answered,
            "/recommend",
            200,
            2.25678,
            "3",
            ["a" * 22],
            [{"energy": 0.5}],
            2,
            [(1, "b" * 22, 0.9), (2, "c" * 22, 0.5)],
            when,
        ),
        RequestEvent(new_request_id(), "/tracks", 200, 1.0, None, None, None, None, (), when),
        FeedbackEvent(answered, "b" * 22, "like", when),
    ]
    stored = []
    for name in ("fast", "sqlalchemy"):
        url = f"sqlite:///{tmp_path / name}.db"
        writer = BatchWriter(WriterSettings(url, 1000, 0.2, 5.0, 3.0), shared=[0] * N_SHARED)
        if name == "sqlalchemy":
            writer.sqlite = None  # the path every other database takes
        assert writer.write_until_done(
            [(1, "spool", 1, [pack_event(event) for event in batch])], lambda: True
        )
        assert writer.last_error is None
        with writer.engine.connect() as connection:  # the raw values, as another reader (Grafana) sees them
            stored.append(
                [
                    connection.exec_driver_sql(f"SELECT * FROM {t.name} ORDER BY 1, 2").all()
                    for t in metadata.sorted_tables
                ]
            )
        writer.engine.dispose()
    fast, reference = stored
    assert fast == reference
    assert sum(len(rows) for rows in fast) == 6  # requests 2, recommendations 2, feedback 1, spool 1


def test_request_ids_are_time_ordered_uuids() -> None:
    earlier = [new_request_id() for _ in range(100)]
    time.sleep(0.002)
    later = new_request_id()
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in [*earlier, later])
    assert len(set(earlier)) == 100
    assert later > max(earlier)  # a new millisecond sorts after every id of the earlier ones
