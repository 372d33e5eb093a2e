"""The request log under faults, caused for real: real `songrec serve` processes, real SQLite
files and a real PostgreSQL database. In every case, what the API answered is in the end
stored or counted as dropped, and SIGTERM ends the server within 15 s."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.faults.harness import (
    STOP_WITHIN,
    eventually,
    postgres_programs,
    private_postgres,
    project_copy,
    serving,
    set_read_only,
    sqlite_locked,
    stored,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return project_copy(tmp_path / "project")


def test_a_killed_writer_is_restarted_and_writes_what_it_had_not(
    project: Path, bundle_file: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with serving(project, bundle_file, url, tmp_path / "serve.log") as server:
        server.recommend(200)
        server.writer().kill()
        server.recommend(200)  # answered while no writer runs
        restarted = eventually(
            lambda: server.metric("songrec_event_writer_restarts_total") == 1, 5, "a restart"
        )
        eventually(lambda: stored(url) == server.answered, 10, "all answered requests stored")
        assert server.metric("songrec_events_dropped_total") == 0
        assert server.terminate() < STOP_WITHIN
    print(f"writer restarted within {restarted:.1f} s")
    assert "the event writer died" in (tmp_path / "serve.log").read_text()


def test_a_killed_api_leaves_its_spool_to_the_next_start(
    project: Path, bundle_file: Path, tmp_path: Path
) -> None:
    database = tmp_path / "events.db"
    url = f"sqlite:///{database}"
    with serving(project, bundle_file, url, tmp_path / "first.log") as first:
        first.recommend(20)
        eventually(lambda: stored(url) == first.answered, 10, "the first requests stored")
        with sqlite_locked(database):  # nothing more can be written: it all waits in the spool
            first.recommend(300)
            time.sleep(1.5)  # answered more than a second before the kill
            first.kill()  # SIGKILL, the API and its writer
        answered = first.answered
    assert stored(url) == 20 + 1
    assert list((project / "var" / "event-spool").glob("*.spool"))
    with serving(project, bundle_file, url, tmp_path / "second.log") as second:
        eventually(lambda: stored(url) == answered + second.answered, 20, "the spool replayed")
        assert second.metric("songrec_events_replayed_total") == 300
        assert second.terminate() < STOP_WITHIN
    assert not list((project / "var" / "event-spool").glob("*.spool"))  # written, so deleted


def test_a_locked_store_keeps_the_events_and_sigterm_stays_bounded(
    project: Path, bundle_file: Path, tmp_path: Path
) -> None:
    database = tmp_path / "events.db"
    url = f"sqlite:///{database}"
    with serving(project, bundle_file, url, tmp_path / "serve.log") as server:
        server.recommend(10)
        eventually(lambda: stored(url) == server.answered, 10, "the tables created")
        with sqlite_locked(database):
            locked_at = time.monotonic()
            while time.monotonic() - locked_at < 8:
                server.recommend(20)
            assert server.metric("songrec_event_store_up") == 0  # noticed: the writes time out
            assert server.metric("songrec_events_dropped_total") == 0
        eventually(lambda: stored(url) == server.answered, 15, "everything written once unlocked")
        assert server.metric("songrec_event_store_up") == 1
        # Locked again and stopped: the exit is bounded and the spool keeps the rest.
        with sqlite_locked(database):
            server.recommend(50)
            assert server.terminate() < STOP_WITHIN
        answered = server.answered
    with serving(project, bundle_file, url, tmp_path / "again.log") as again:
        eventually(lambda: stored(url) == answered + again.answered, 20, "the spool replayed")
        again.terminate()


def test_a_deleted_sqlite_file_is_created_again_not_written_unlinked(
    project: Path, bundle_file: Path, tmp_path: Path
) -> None:
    database = tmp_path / "events.db"
    url = f"sqlite:///{database}"
    with serving(project, bundle_file, url, tmp_path / "serve.log") as server:
        server.recommend(50)
        eventually(lambda: stored(url) == server.answered, 10, "the first requests stored")
        for path in tmp_path.glob("events.db*"):
            path.unlink()
        server.recommend(100)
        eventually(lambda: database.exists() and stored(url) == 100, 10, "a new file with the new requests")
        assert server.terminate() < STOP_WITHIN
    assert "was deleted or replaced: creating it again" in (tmp_path / "serve.log").read_text()


def test_a_read_only_postgresql_store_is_noticed_and_caught_up(
    project: Path, bundle_file: Path, tmp_path: Path, postgres_url: str
) -> None:
    try:
        with serving(project, bundle_file, postgres_url, tmp_path / "serve.log") as server:
            server.recommend(20)
            eventually(lambda: stored(postgres_url) == server.answered, 10, "the first requests stored")
            set_read_only(postgres_url, True)
            server.recommend(200)
            eventually(lambda: server.metric("songrec_event_store_up") == 0, 10, "the store noticed down")
            set_read_only(postgres_url, False)
            eventually(lambda: stored(postgres_url) == server.answered, 20, "caught up")
            assert server.metric("songrec_events_dropped_total") == 0
            assert server.terminate() < STOP_WITHIN
        assert "is unavailable, keeping events until it is back" in (tmp_path / "serve.log").read_text()
    finally:
        set_read_only(postgres_url, False)  # so that the fixture can drop it


@pytest.mark.skipif(postgres_programs() is None, reason="PostgreSQL's server programs are not installed")
def test_a_postgresql_server_killed_then_started_again_loses_nothing(
    project: Path, bundle_file: Path, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    with private_postgres() as postgres, serving(project, bundle_file, postgres.url, log) as server:
        server.recommend(20)
        eventually(lambda: stored(postgres.url) == server.answered, 10, "the first requests stored")
        postgres.kill()
        server.recommend(200)  # answered while no server listens
        eventually(lambda: server.metric("songrec_event_store_up") == 0, 10, "the store noticed down")
        assert server.session.get(f"{server.url}/ready", timeout=5).status_code == 200  # serving goes on
        postgres.start()
        eventually(lambda: stored(postgres.url) == server.answered, 30, "caught up")
        assert server.metric("songrec_event_store_up") == 1
        assert server.metric("songrec_events_dropped_total") == 0
        assert server.terminate() < STOP_WITHIN
    assert "is unavailable, keeping events until it is back" in log.read_text()


def test_sqlite_sees_what_the_lock_helper_holds(tmp_path: Path) -> None:
    """The lock helper really locks: a writer times out while it is held."""
    database = tmp_path / "db.sqlite"
    sqlite3.connect(database).execute("CREATE TABLE t (x)").connection.close()
    with sqlite_locked(database):
        connection = sqlite3.connect(database, timeout=0.2)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            connection.execute("INSERT INTO t VALUES (1)")
        connection.close()
