"""`songrec airflow`: Airflow standalone (SQLite) on the project's DAGs, for the UI without compose.

Everything lives in one AIRFLOW_HOME (airflow_home/ in the project by default): the metadata
DB, logs, a generated admin password and the API's JWT secret, both kept so that a restart
keeps the same login. The pool `songrec_dvc` (one slot) is created once the API is healthy.

Only the owner can read what Airflow writes there: the password and the secret are created 0600,
and Airflow runs with umask 077, so its SQLite DB is 0600 too. Nothing listens beyond 127.0.0.1:
the API server is bound to it, and the log servers are not started (see `_airflow_standalone`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from songrec.core.errors import SongrecError
from songrec.orchestration.dvc_runner import DVC_POOL

ADMIN = "admin"
# Airflow's processes create files (its SQLite DB first) with this umask: owner only.
AIRFLOW_UMASK = 0o077

# Stopping. Ctrl-C must give the prompt back within 5 s. Airflow's components (scheduler, DAG
# processor, API server, triggerer) may take longer than that to exit after SIGTERM on busy
# cores, so whatever is still there after the grace gets SIGKILL. That cannot be ignored; its wait
# covers the kernel tearing the processes down and our reaping them (see `_adopting_orphans`).
# The two waits below bound the stop, then songrec's own exit follows.
STOP_GRACE_SECONDS = 2.5
KILL_WAIT_SECONDS = 1.5
POLL_SECONDS = 0.1
PR_SET_CHILD_SUBREAPER = 36  # prctl option, <linux/prctl.h>


def _secret_file(path: Path, make: Callable[[], str]) -> str:
    """The text of `path`, created 0600 from the start if it is missing (never briefly readable by
    others, never half-written: written under a temporary name, then linked into place)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # O_EXCL, 0600
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(make())
            with contextlib.suppress(FileExistsError):  # another process was first: theirs counts
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    if path.stat().st_mode & 0o077:  # written by an older songrec: tighten it
        path.chmod(0o600)
    return path.read_text()


def admin_password(home: Path) -> str:
    """The admin password stored in AIRFLOW_HOME (created on first use)."""
    text = _secret_file(home / "passwords.json", lambda: json.dumps({ADMIN: secrets.token_urlsafe(12)}))
    return str(json.loads(text)[ADMIN])


def jwt_secret(home: Path) -> str:
    """A 64-byte secret the scheduler and API server share (stored, so restarts keep tokens valid)."""
    return _secret_file(home / "jwt_secret", lambda: secrets.token_urlsafe(64)).strip()


def airflow_environment(root: Path, home: Path, port: int) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "SONGREC_ROOT": str(root),
        "AIRFLOW_HOME": str(home),
        # The metadata DB is the home's own, whatever the calling shell (or a test) points at.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",  # two cores: a few tasks at a time
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret(home),
        "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)  # it would unpause every DAG at creation
    return env


def _airflow_standalone() -> None:
    """`airflow standalone`, but its scheduler and triggerer start no log server.

    Airflow 3.3 has a port option for them ([logging] worker_log_server_port and
    trigger_log_server_port) but no host option: `serve_logs` binds every interface. Here all
    components share one machine and one log folder, and the API server reads task logs from that
    folder, so the log servers are left out (`--skip-serve-logs`). Should Airflow's standalone
    command change shape, this fails (AttributeError, TypeError); test_standalone.py checks that
    nothing of Airflow's listens beyond 127.0.0.1.
    """
    from airflow.cli.commands import standalone_command

    sub_command = standalone_command.SubCommand
    start = sub_command.__init__

    def without_log_server(
        self: standalone_command.SubCommand,
        parent: object,
        name: str,
        command: list[str],
        env: dict[str, str],
    ) -> None:
        if name in ("scheduler", "triggerer"):
            command = [*command, "--skip-serve-logs"]
        start(self, parent, name=name, command=command, env=env)

    sub_command.__init__ = without_log_server  # type: ignore[method-assign]
    sys.argv = ["airflow", "standalone"]
    from airflow.__main__ import main

    main()


def start_standalone(root: Path, home: Path, port: int, log_file: Path) -> subprocess.Popen[bytes]:
    """Start `airflow standalone` in a session and process group of its own (stop it with `stop`)."""
    admin_password(home)
    env = airflow_environment(root, home, port)
    database = home / "airflow.db"
    if database.exists():
        database.chmod(0o600)  # made by an older songrec; new ones are 0600 through the umask
    with os.fdopen(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", __name__],
            env=env,
            cwd=root,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            umask=AIRFLOW_UMASK,
        )


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 180.0) -> float:
    """Seconds until the API reports healthy; raises if the process dies or time runs out."""
    import requests

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise SongrecError(f"airflow standalone exited with code {process.returncode}")
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SongrecError(f"Airflow at {url} was not healthy after {timeout:.0f} s")


def create_pool(root: Path, home: Path, port: int) -> None:
    """The one-slot pool every stage task uses: one DVC command at a time."""
    env = airflow_environment(root, home, port)
    command = [
        str(Path(sys.executable).parent / "airflow"),
        "pools",
        "set",
        DVC_POOL,
        "1",
        "one DVC command at a time",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, umask=AIRFLOW_UMASK)
    if result.returncode != 0:
        raise SongrecError(f"cannot create the Airflow pool {DVC_POOL}: {result.stderr.strip()[-500:]}")


def _airflow_processes(process: subprocess.Popen[bytes]) -> dict[int, int]:
    """Airflow's processes still there, zombies included: pid -> process group.

    `start_standalone` made `process` the leader of a new session and process group. Airflow runs
    each task (and so its DVC command) in a process group of its own, inside that session. Where
    there is no /proc (not Linux), only the leader's group is visible: os.killpg(pgid, 0) fails
    only once no member is left.
    """
    session = process.pid
    if not Path("/proc/self/stat").exists():
        try:
            os.killpg(session, 0)
        except ProcessLookupError:
            return {}
        return {session: session}
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            group, member_of = stat[stat.rindex(")") + 2 :].split()[2:4]
            if int(member_of) == session:
                found[int(entry.name)] = int(group)
    return found


def _reap(process: subprocess.Popen[bytes], groups: set[int]) -> None:
    """Collect the exit status of our children among `groups`: a zombie still counts as a member of
    its group until its parent reaps it. The leader is our child; so are its orphans while
    `_adopting_orphans` is on."""
    process.poll()
    for group in groups:
        with contextlib.suppress(ChildProcessError):
            while (reaped := os.waitpid(-group, os.WNOHANG))[0]:
                if reaped[0] == process.pid:  # the leader, exited since `poll`
                    process.returncode = os.waitstatus_to_exitcode(reaped[1])


@contextlib.contextmanager
def _adopting_orphans() -> Iterator[None]:
    """Linux: processes orphaned meanwhile (the leader dies first) become our children, reaped at once.

    Otherwise init adopts and reaps them, which can take a good part of what a Ctrl-C may take.
    Elsewhere (no prctl) init does it.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        yield
        return
    adopting = prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        if adopting:
            prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _signal_all(groups: set[int], sig: signal.Signals) -> None:
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)


def _wait_gone(process: subprocess.Popen[bytes], seconds: float, hurry: threading.Event) -> dict[int, int]:
    """Reap and wait until no Airflow process is left, at most `seconds` (or until `hurry`);
    returns what is left."""
    deadline = time.monotonic() + seconds
    groups = {process.pid}
    while True:
        _reap(process, groups)
        left = _airflow_processes(process)
        groups |= set(left.values())
        if not left or time.monotonic() >= deadline or hurry.is_set():
            return left
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def _signals_set(hurry: threading.Event) -> Iterator[None]:
    """While stopping, Ctrl-C or SIGTERM again means: kill now (not: leave Airflow running)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: hurry.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop(process: subprocess.Popen[bytes], echo: Callable[[str], None] = lambda _: None) -> float | None:
    """Stop every Airflow process (standalone's children and their tasks): SIGTERM, then SIGKILL.

    Returns the seconds it took, or None if some outlived even SIGKILL's wait (they are named).
    """
    started = time.monotonic()
    hurry = threading.Event()
    with _signals_set(hurry), _adopting_orphans():
        left = _wait_gone(process, 0, hurry)
        if not left:
            return 0.0
        echo("stopping Airflow (SIGTERM) ...")
        _signal_all(set(left.values()), signal.SIGTERM)
        left = _wait_gone(process, STOP_GRACE_SECONDS, hurry)
        if left:
            echo(
                f"{len(left)} Airflow processes still there after {time.monotonic() - started:.1f} s: SIGKILL"
            )
            _signal_all(set(left.values()), signal.SIGKILL)
            left = _wait_gone(process, KILL_WAIT_SECONDS, threading.Event())
    seconds = time.monotonic() - started
    if left:
        echo(f"Airflow processes still there after {seconds:.1f} s: {sorted(left)}")
        return None
    echo(f"Airflow stopped after {seconds:.1f} s")
    return seconds


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(root: Path, home: Path, port: int, echo: Callable[[str], None]) -> None:
    """Start, report the URL and login, and wait for Ctrl-C; stop everything on the way out."""
    log_file = home / "standalone.log"
    home.mkdir(parents=True, exist_ok=True)
    # Airflow runs in a process group of its own: a SIGTERM to us must stop it too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    process = start_standalone(root, home, port, log_file)
    try:
        url = f"http://127.0.0.1:{port}"
        echo(f"starting Airflow standalone (log: {log_file}) ...")
        seconds = wait_healthy(url, process)
        create_pool(root, home, port)
        echo(f"Airflow is up after {seconds:.0f} s: {url}")
        echo(f"login: {ADMIN} / {admin_password(home)}   (kept in {home / 'passwords.json'})")
        echo(
            "DAGs: songrec_training (trigger it from the UI); songrec_retraining (daily) and"
            " songrec_monitoring (hourly) start paused: unpause them in the UI. Ctrl-C stops."
        )
        process.wait()
        echo(f"airflow standalone exited with code {process.returncode} (log: {log_file})")
    except KeyboardInterrupt:
        pass
    finally:
        stop(process, echo)


if __name__ == "__main__":  # the child `start_standalone` runs
    _airflow_standalone()
