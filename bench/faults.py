"""Benchmark the request log under faults: what a real `songrec serve` answered, and where it went.

Each fault is caused for real on a fresh store, while one client asks /recommend as fast as it
is answered (so the burst hold is on, as under load): the event writer SIGKILLed; the API
SIGKILLed (then started again); the SQLite file deleted; the SQLite file locked by another
process for 8 s; a PostgreSQL store made read-only (then writable again); a PostgreSQL server of
its own SIGKILLed (then started again). For each it prints the requests answered, the events
stored, those counted as dropped, those lost uncounted (answered - stored - dropped), the seconds
until the log caught up after the fault ended, and the seconds from SIGTERM to exit. It measures
and prints; it asserts nothing.

    python bench/faults.py                  # needs `make run` first (models/bundle/bundle.pkl)
    python bench/faults.py --requests 2000  # per phase
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from results import run_and_record  # bench/results.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fault harness is shared with tests/faults

from sqlalchemy import create_engine, text  # noqa: E402

from tests.faults.harness import (  # noqa: E402
    Server,
    eventually,
    private_postgres,
    project_copy,
    serving,
    set_read_only,
    sqlite_locked,
    stored,
)

BUNDLE = ROOT / "models" / "bundle" / "bundle.pkl"
HOLD_SECONDS = 30.0  # the API's default burst hold (SONGREC_EVENT_HOLD_SECONDS)
WRITER_BACK: list[float] = []  # seconds from the writer's SIGKILL until its restart was counted


@dataclass
class Outcome:
    fault: str
    answered: int
    stored: int
    dropped: int
    recovered: float  # seconds from the end of the fault until everything answered was stored
    exit_seconds: float


def caught_up(
    fault: str, server: Server, url: str, ended: float, earlier: int = 0, before: int = 0
) -> Outcome:
    """Wait until the store holds all `server` answered (plus `earlier`, answered by a server
    before it; less `before`, lost with a deleted file), then stop it: the fault's outcome."""
    answered = earlier + server.answered - before
    eventually(lambda: stored(url) >= answered, 60, "caught up")
    recovered = time.monotonic() - ended
    dropped = int(server.metric("songrec_events_dropped_total"))
    return Outcome(fault, answered, stored(url), dropped, recovered, server.terminate())


def writer_killed(folder: Path, n: int) -> Outcome:
    url = f"sqlite:///{folder / 'events.db'}"
    with serving(project_copy(folder / "project"), BUNDLE, url, folder / "serve.log", HOLD_SECONDS) as server:
        server.recommend(n)
        server.writer().kill()
        WRITER_BACK.append(
            eventually(lambda: server.metric("songrec_event_writer_restarts_total") == 1, 60, "restart")
        )
        server.recommend(n)  # answered by the new writer, with what the dead one had not written
        return caught_up("event writer SIGKILLed", server, url, time.monotonic())


def api_killed(folder: Path, n: int) -> Outcome:
    url = f"sqlite:///{folder / 'events.db'}"
    project = project_copy(folder / "project")
    with serving(project, BUNDLE, url, folder / "first.log", HOLD_SECONDS) as first:
        first.recommend(n)  # at full speed: the burst hold keeps the events from the writer
        time.sleep(1.0)
        first.kill()
        answered = first.answered
    ended = time.monotonic()
    with serving(project, BUNDLE, url, folder / "second.log", HOLD_SECONDS) as second:
        return caught_up(
            "API SIGKILLed during a burst hold, started again", second, url, ended, earlier=answered
        )


def file_deleted(folder: Path, n: int) -> Outcome:
    database = folder / "events.db"
    url = f"sqlite:///{database}"
    with serving(project_copy(folder / "project"), BUNDLE, url, folder / "serve.log", HOLD_SECONDS) as server:
        server.recommend(n)
        eventually(lambda: stored(url) == server.answered, 60, "written")
        for path in folder.glob("events.db*"):
            path.unlink()
        before = server.answered
        ended = time.monotonic()
        server.recommend(n)
        # Counted from the deletion: what was written before went with the file.
        return caught_up("SQLite file deleted (requests after it)", server, url, ended, before=before)


def file_locked(folder: Path, n: int) -> Outcome:
    database = folder / "events.db"
    url = f"sqlite:///{database}"
    with serving(project_copy(folder / "project"), BUNDLE, url, folder / "serve.log", HOLD_SECONDS) as server:
        server.recommend(10)
        eventually(lambda: stored(url) == server.answered, 60, "tables")
        with sqlite_locked(database):
            locked = time.monotonic()
            while time.monotonic() - locked < 8.0:
                server.recommend(50)
        return caught_up("SQLite file locked for 8 s", server, url, time.monotonic())


def postgres_read_only(folder: Path, n: int) -> Outcome:
    name = f"songrec_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )

    def sql(statement: str, **params: str) -> None:
        with admin.connect() as connection:
            connection.execute(text(statement), params)

    sql(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        with serving(
            project_copy(folder / "project"), BUNDLE, url, folder / "serve.log", HOLD_SECONDS
        ) as server:
            server.recommend(10)
            eventually(lambda: stored(url) == server.answered, 60, "tables")
            set_read_only(url, True)
            server.recommend(n)
            set_read_only(url, False)
            outcome = caught_up("PostgreSQL read-only, then writable", server, url, time.monotonic())
    finally:
        sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    return outcome


def postgres_killed(folder: Path, n: int) -> Outcome:
    with private_postgres() as postgres:
        url = postgres.url
        with serving(
            project_copy(folder / "project"), BUNDLE, url, folder / "serve.log", HOLD_SECONDS
        ) as server:
            server.recommend(10)
            eventually(lambda: stored(url) == server.answered, 60, "tables")
            postgres.kill()
            server.recommend(n)
            postgres.start()
            return caught_up("PostgreSQL server SIGKILLed, started again", server, url, time.monotonic())


FAULTS: list[Callable[[Path, int], Outcome]] = [
    writer_killed,
    api_killed,
    file_deleted,
    file_locked,
    postgres_read_only,
    postgres_killed,
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000, help="requests per phase of a fault")
    args = parser.parse_args()
    if not BUNDLE.exists():
        print(f"{BUNDLE} is missing: run `make run` first", file=sys.stderr)
        return 1
    outcomes = []
    for fault in FAULTS:
        with tempfile.TemporaryDirectory(prefix="songrec-fault-") as tmp:
            outcomes.append(fault(Path(tmp), args.requests))
            print(f"  {outcomes[-1].fault}: done", file=sys.stderr)
    print("One `songrec serve --bundle` per fault, one client at full speed (the burst hold on).\n")
    print(f"{'fault':<50}{'answered':>9}{'stored':>8}{'dropped':>8}{'lost':>6}{'caught up':>11}{'exit':>7}")
    for o in outcomes:
        lost = o.answered - o.stored - o.dropped
        print(
            f"{o.fault:<50}{o.answered:>9,}{o.stored:>8,}{o.dropped:>8,}{lost:>6,}"
            f"{o.recovered:>10.1f}s{o.exit_seconds:>6.1f}s"
        )
    if WRITER_BACK:
        print(
            f"\nthe killed event writer was restarted (and counted) {WRITER_BACK[-1]:.1f} s after its SIGKILL"
        )
    print("\ndropped: counted in songrec_events_dropped_total; lost: answered, neither stored nor counted.")
    print("caught up: from the end of the fault until all answered requests were stored;")
    print("exit: from SIGTERM to the server's exit. Targets: lost 0, writer back within 5 s, exit <= 15 s.")
    return 0


if __name__ == "__main__":
    sys.exit(run_and_record("faults", main))
