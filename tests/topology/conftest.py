"""Helpers for the production topology: read docker-compose.yaml as compose would, start the
services of the image as processes with a clean environment, and watch their memory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.conftest import BIN, ROOT
from tests.services import stop_group

COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
PG_INIT = ROOT / "docker" / "postgres" / "init-databases.sh"
GRAFANA = ROOT / "monitoring" / "grafana"

# The venv the services run from: this one, or (SONGREC_TOPOLOGY_VENV) a venv installed with the
# Dockerfile's install line, to run the topology on exactly the image's packages.
SERVICE_BIN = Path(os.environ.get("SONGREC_TOPOLOGY_VENV") or BIN.parent) / "bin"

# Variables of the developer's shell that must not leak into the processes of a topology.
FOREIGN_PREFIXES = ("AIRFLOW", "MLFLOW_", "SONGREC_", "DAGSHUB_", "AWS_", "PG")

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an .env file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error} and $$."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        present = name in env
        usable = present and env[name] != ""
        if op in (":-", "-"):
            return env[name] if (usable if op == ":-" else present) else arg
        if op in (":?", "?") and not (usable if op == ":?" else present):
            raise KeyError(f"{name}: {arg}")
        return env.get(name, "")

    return _VARIABLE.sub(replace, value.replace("$$", "\0")).replace("\0", "$")


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yaml with its anchors merged, interpolated with `env` (default: .env.example)."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    return interpolate(raw, read_env_file(ENV_EXAMPLE) if env is None else env)


def service_environment(compose: Mapping[str, Any], service: str) -> dict[str, str]:
    environment = compose["services"][service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any topology variable of the shell, plus `extra`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    base["PATH"] = f"{SERVICE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**base, **extra}


@contextmanager
def service(
    name: str, command: list[str], env: Mapping[str, str], logs: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """One service of the topology as a process group with exactly `env`; always stopped."""
    log = logs / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_environment(env),
            cwd=cwd,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            stop_group(process, timeout=30)


def run_role(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """docker/entrypoint.sh with a role, to completion (a one-shot service)."""
    result = subprocess.run(
        ["bash", str(ENTRYPOINT), *args],
        env=clean_environment(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )
    return result


class MemoryWatch:
    """The largest resident memory of each process group seen while it runs (sampled every 2 s)."""

    def __init__(self) -> None:
        self.groups: dict[str, int] = {}
        self.peak_mb: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._page = os.sysconf("SC_PAGE_SIZE")

    def watch(self, name: str, process: subprocess.Popen[bytes]) -> None:
        self.groups[name] = process.pid

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(2):
            self.sample()

    def sample(self) -> None:
        totals: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                pgid = int(stat.rsplit(")", 1)[1].split()[2])
                if pgid in self.groups.values():
                    pages = int((entry / "statm").read_text().split()[1])
                    totals[pgid] = totals.get(pgid, 0) + pages * self._page
            except (OSError, ValueError, IndexError):
                continue
        for name, pgid in self.groups.items():
            mb = totals.get(pgid, 0) / 2**20
            self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), mb)

    def report(self) -> str:
        lines = [f"  {name:<22} {mb:7.0f} MB" for name, mb in sorted(self.peak_mb.items())]
        total = sum(self.peak_mb.values())
        return "\n".join(
            ["peak resident memory per service:", *lines, f"  {'sum of peaks':<22} {total:7.0f} MB"]
        )


def wait_for(what: str, check: Any, timeout: float, interval: float = 1.0) -> Any:
    """Call `check` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f} s")
        time.sleep(interval)


# A plain trigger of songrec_training: plan, route to the stages; no experiment, no release
# (evaluate names the first champion).
RAN_TASKS = ("plan", "route", "ingest", "validate", "transform", "train_reference", "train", "evaluate")
SKIPPED_TASKS = ("experiment", "release")


@dataclass(frozen=True)
class TrainingRun:
    run_id: str
    state: str  # success or failed
    tasks: list[dict[str, Any]]  # the run's task instances, as the REST API gives them
    evaluate: dict[str, Any]  # the evaluate task's return value (its XCom), when the run succeeded


def run_songrec_training(airflow_url: str, admin_password: str, timeout: float) -> TrainingRun:
    """Through Airflow's REST API v2, as a user would: log in, wait until songrec_training is
    parsed, unpause it, trigger a plain run and wait until it ends."""
    token = requests.post(
        f"{airflow_url}/auth/token", json={"username": "admin", "password": admin_password}, timeout=60
    )
    assert token.status_code in (200, 201), token.text
    rest = requests.Session()
    rest.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    dag_url = f"{airflow_url}/api/v2/dags/songrec_training"
    wait_for("songrec_training parsed", lambda: rest.get(dag_url, timeout=30).status_code == 200, 300, 2)
    assert rest.patch(dag_url, json={"is_paused": False}, timeout=30).status_code == 200
    triggered = rest.post(f"{dag_url}/dagRuns", json={"logical_date": None}, timeout=30)
    assert triggered.status_code == 200, triggered.text
    run_id = triggered.json()["dag_run_id"]

    def finished() -> str | None:
        state = rest.get(f"{dag_url}/dagRuns/{run_id}", timeout=30).json()["state"]
        return state if state in ("success", "failed") else None

    state = wait_for("the songrec_training run", finished, timeout, 3)
    tasks = rest.get(f"{dag_url}/dagRuns/{run_id}/taskInstances", timeout=30).json()["task_instances"]
    evaluate: Any = {}
    if state == "success":
        evaluate = rest.get(
            f"{dag_url}/dagRuns/{run_id}/taskInstances/evaluate/xcomEntries/return_value", timeout=30
        ).json()["value"]
        evaluate = json.loads(evaluate) if isinstance(evaluate, str) else evaluate
    return TrainingRun(run_id, state, tasks, evaluate)
