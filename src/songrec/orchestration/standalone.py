"""`songrec airflow`: Airflow standalone (SQLite) on the project's DAGs, for the UI without compose.

Everything lives in one AIRFLOW_HOME (airflow_home/ in the project by default): the metadata
DB, logs, a generated admin password and the API's JWT secret, both kept so that a restart
keeps the same login. The pool `songrec_dvc` (one slot) is created once the API is healthy.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from songrec.core.errors import SongrecError
from songrec.orchestration.dvc_runner import DVC_POOL

ADMIN = "admin"


def admin_password(home: Path) -> str:
    """The admin password stored in AIRFLOW_HOME (created on first use)."""
    path = home / "passwords.json"
    if path.exists():
        return str(json.loads(path.read_text())[ADMIN])
    home.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    path.write_text(json.dumps({ADMIN: password}))
    path.chmod(0o600)
    return password


def jwt_secret(home: Path) -> str:
    """A 64-byte secret the scheduler and API server share (stored, so restarts keep tokens valid)."""
    path = home / "jwt_secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


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


def start_standalone(root: Path, home: Path, port: int, log_file: Path) -> subprocess.Popen[bytes]:
    """Start `airflow standalone` in its own process group (stop it with `stop`)."""
    admin_password(home)
    env = airflow_environment(root, home, port)
    with log_file.open("ab") as output:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), "standalone"],
            env=env,
            cwd=root,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
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
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SongrecError(f"cannot create the Airflow pool {DVC_POOL}: {result.stderr.strip()[-500:]}")


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stop the whole process group (standalone's children included)."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                process.poll()
                return
            time.sleep(0.3)


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
    except KeyboardInterrupt:
        echo("stopping Airflow ...")
    finally:
        stop(process)
