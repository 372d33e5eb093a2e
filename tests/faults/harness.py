"""Real `songrec serve` processes on real stores, and the faults done to them: shared by the
fault tests (tests/faults) and the fault benchmark (bench/faults.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests
from sqlalchemy import create_engine, inspect, text

from tests.conftest import BIN, ROOT, free_port
from tests.services import wait_http

STOP_WITHIN = 15.0  # seconds from SIGTERM to exit, in every case


class Server:
    """One `songrec serve --bundle` process (and its event writer) on a project and a store."""

    def __init__(
        self, project: Path, bundle: Path, store_url: str, log: Path, hold_seconds: float = 0.0
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {
            **os.environ,
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            "SONGREC_EVENT_STORE_URL": store_url,
            "SONGREC_RATE_LIMITS": "off",
            "SONGREC_EVENT_HOLD_SECONDS": str(hold_seconds),
        }
        command = [str(BIN / "songrec"), "serve", "--bundle", str(bundle), "--port", str(self.port)]
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                command, cwd=project, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_http(f"{self.url}/ready", self.process, log, timeout=90)
        self.session = requests.Session()
        tracks = self.session.get(f"{self.url}/tracks", params={"q": "a"}, timeout=5).json()["tracks"]
        self.body = {"track_ids": [t["track_id"] for t in tracks[:3]], "k": 5}
        self.answered = 1  # the /tracks request

    def recommend(self, count: int) -> None:
        for _ in range(count):
            response = self.session.post(f"{self.url}/recommend", json=self.body, timeout=10)
            assert response.status_code == 200, response.text
            self.answered += 1

    def metric(self, name: str) -> float:
        for line in self.session.get(f"{self.url}/metrics", timeout=5).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        raise AssertionError(f"{name} not in /metrics")

    def writer(self) -> psutil.Process:
        """The event writer (spawned; the other child is multiprocessing's resource tracker)."""
        children = psutil.Process(self.process.pid).children()
        (writer,) = [child for child in children if "spawn_main" in " ".join(child.cmdline())]
        return writer

    def terminate(self) -> float:
        """SIGTERM to the group, as a supervisor sends it; the seconds until the server exited."""
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_WITHIN + 15)
        finally:
            self.kill()
        return time.monotonic() - started

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.process.wait(10)


@contextmanager
def serving(
    project: Path, bundle: Path, store_url: str, log: Path, hold_seconds: float = 0.0
) -> Iterator[Server]:
    server = Server(project, bundle, store_url, log, hold_seconds)
    try:
        yield server
    finally:
        server.kill()


def stored(store_url: str) -> int:
    """Requests in the store (0 before the writer has created its tables)."""
    engine = create_engine(store_url)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("requests"):
                return 0
            return int(connection.execute(text("SELECT count(*) FROM requests")).scalar_one())
    finally:
        engine.dispose()


def eventually(condition, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not within {timeout} s: {what}"
        time.sleep(0.1)
    return time.monotonic() - started


@contextmanager
def sqlite_locked(path: Path) -> Iterator[None]:
    """Another process's exclusive transaction on the SQLite file (readers and writers wait)."""
    holder = subprocess.Popen(
        [
            str(BIN / "python"),
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
    try:
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)


def project_copy(folder: Path) -> Path:
    """What `songrec serve --bundle` reads: the config and params, in a folder of its own."""
    import shutil

    shutil.copytree(ROOT / "config", folder / "config")
    shutil.copy(ROOT / "params.yaml", folder / "params.yaml")
    return folder


def set_read_only(database_url: str, on: bool) -> None:
    """A PostgreSQL database's new transactions read-only (or writable again); its open
    sessions are ended, so that clients reconnect into the new setting."""
    server, name = database_url.rsplit("/", 1)
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            setting = "on" if on else "off"
            connection.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {setting}'))
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": name},
            )
    finally:
        admin.dispose()


def postgres_programs() -> Path | None:
    """The folder of PostgreSQL's server programs (Debian's layout), None when not installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


class PrivatePostgres:
    """A PostgreSQL server of its own (a fresh cluster on a free port) that can be killed and
    started again, which the machine's shared server must not be. Run as the `postgres` user when
    this process is root (the server refuses root), in a folder that user can enter."""

    def __init__(self) -> None:
        programs = postgres_programs()
        assert programs is not None, "PostgreSQL's server programs are not installed"
        self.programs = programs
        self.folder = Path(tempfile.mkdtemp(prefix="songrec-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            self.as_user = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        command = [str(programs / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"]
        subprocess.run([*self.as_user, *command], check=True, capture_output=True, timeout=120)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [str(self.programs / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        command += ["-k", str(self.folder), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        with (self.folder / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [*self.as_user, *command], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        eventually(self.answers, 30, f"PostgreSQL on port {self.port}")

    def answers(self) -> bool:
        engine = create_engine(self.url, connect_args={"connect_timeout": 2})
        try:
            with engine.connect() as connection:
                return connection.execute(text("SELECT 1")).scalar_one() == 1
        except Exception:
            return False
        finally:
            engine.dispose()

    def kill(self) -> None:
        """SIGKILL to the server and its backends, as the kernel's OOM killer would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.close()
