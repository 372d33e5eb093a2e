"""docker-compose.yaml's topology on a real Docker engine (skipped when none answers).

The image is built from the Dockerfile; images no registry can give here are stand-ins built from
Debian's packages (docker/standins/build-images.sh; an image already present is used as it is).
Every service but Grafana (no stand-in) comes up with fresh secrets, on its own compose project
and 127.0.0.2, so nothing here meets a developer's own topology or ports. The REST API triggers
songrec_training; the test checks that every task ran, that songrec-api serves the champion the
run named and logs its requests to PostgreSQL, and that every container is healthy. Everything
is removed afterwards, volumes included.

CI starts an engine (.ci/run). Here: `dockerd --iptables=false --bridge=none` (docs/development.md).
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ROOT
from tests.topology.conftest import (
    ENV_EXAMPLE,
    RAN_TASKS,
    SKIPPED_TASKS,
    load_compose,
    read_env_file,
    run_songrec_training,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.engine]

BIND = "127.0.0.2"  # the compose file's ports, published on an address of their own
IMAGE_TAG = "engine-test"
WITHOUT = ("grafana",)  # no stand-in: the one service left out
STANDINS = ROOT / "docker" / "standins" / "build-images.sh"


def _engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True)
    return ["docker", "compose"] if plugin.returncode == 0 else None


def _run(command: list[str], timeout: float, what: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, (
        f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


class Topology:
    """One compose project on the engine: its commands, its containers, its logs."""

    def __init__(self, compose: list[str], env_file: Path, name: str) -> None:
        self.base = [
            *compose,
            "--project-name",
            name,
            "--env-file",
            str(env_file),
            "-f",
            "docker-compose.yaml",
        ]

    def __call__(self, *args: str, timeout: float = 600) -> str:
        return _run([*self.base, *args], timeout, f"compose {' '.join(args)}")

    def health(self) -> dict[str, str]:
        """service -> its container's health (or state, for a container without a healthcheck)."""
        states = {}
        for container in self("ps", "-q", "--all").split():
            inspected = json.loads(_run(["docker", "inspect", container], 60, "docker inspect"))[0]
            service = inspected["Config"]["Labels"]["com.docker.compose.service"]
            state = inspected["State"]
            health = (state.get("Health") or {}).get("Status")
            states[service] = health or f"{state['Status']} {state['ExitCode']}"
        return states

    def sql(self, database: str, query: str) -> str:
        return self(
            "exec", "-T", "postgres", "psql", "-U", "postgres", "-d", database, "-tA", "-c", query
        ).strip()

    def logs(self) -> str:
        done = subprocess.run(
            [*self.base, "logs", "--no-color", "--tail", "60"], capture_output=True, text=True
        )
        return done.stdout[-20000:]


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[tuple[Topology, dict[str, str]]]:
    if not _engine_answers():
        pytest.skip("no Docker engine answers `docker info` (CI starts one: .ci/run)")
    compose = _compose_command()
    if compose is None:
        pytest.skip("neither docker-compose nor the compose plugin is installed")
    _run(["bash", str(STANDINS)], 1200, "the stand-in images")
    # docker-compose 1.x cannot pass a build network and the engine here has no default bridge,
    # so the image is built first (the legacy builder: no registry for BuildKit's frontend).
    _run(
        [
            "env",
            "DOCKER_BUILDKIT=0",
            "docker",
            "build",
            "--network",
            "host",
            "-t",
            f"songrec:{IMAGE_TAG}",
            ".",
        ],
        2400,
        "docker build",
    )
    dotenv = read_env_file(ENV_EXAMPLE)
    dotenv.update({key: secrets.token_urlsafe(48) for key in dotenv if "change-me" in dotenv[key]})
    dotenv.update({"SONGREC_BIND": BIND, "SONGREC_IMAGE_TAG": IMAGE_TAG, "SONGREC_LABELER_TOKEN": ""})
    env_file = tmp_path / "engine.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in dotenv.items()))
    env_file.chmod(0o600)
    project = Topology(compose, env_file, f"songrec-engine-{uuid.uuid4().hex[:8]}")
    try:
        yield project, dotenv
    except BaseException:
        print(project.logs())
        raise
    finally:
        project("down", "--volumes", "--remove-orphans", "--timeout", "30")


@pytest.mark.timeout(3600)
def test_the_compose_topology_runs_on_a_docker_engine(topology: tuple[Topology, dict[str, str]]) -> None:
    compose, dotenv = topology
    timings: dict[str, float] = {}
    services = [name for name in load_compose(dotenv)["services"] if name not in WITHOUT]
    airflow_url, api_url = f"http://{BIND}:8080", f"http://{BIND}:8000"

    mark = time.monotonic()
    compose("up", "--detach", "--no-build", *services)

    def airflow_healthy() -> bool:
        try:
            return requests.get(f"{airflow_url}/api/v2/monitor/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    wait_for("Airflow's API server", airflow_healthy, 600, 3)
    timings["up"] = time.monotonic() - mark

    mark = time.monotonic()
    run = run_songrec_training(airflow_url, dotenv["AIRFLOW_ADMIN_PASSWORD"], 1800)
    timings["songrec_training"] = time.monotonic() - mark
    task_states = {task["task_id"]: task["state"] for task in run.tasks}
    assert run.state == "success", task_states
    assert task_states == {**dict.fromkeys(RAN_TASKS, "success"), **dict.fromkeys(SKIPPED_TASKS, "skipped")}
    # Every task ran on a Celery worker container, not in the scheduler.
    hosts = {task["hostname"] for task in run.tasks if task["task_id"] in RAN_TASKS}
    worker_hosts = set(compose("ps", "-q", "airflow-worker").split())
    on_workers = [any(container.startswith(host) for container in worker_hosts) for host in hosts]
    assert hosts and all(on_workers), hosts
    evaluate = run.evaluate
    assert evaluate["promoted"] is True, evaluate
    champion = str(evaluate["champion_version_after"])

    # The registry (PostgreSQL, through the MLflow container) names that version champion.
    aliases = compose.sql("mlflow", "SELECT alias || '=' || version FROM registered_model_aliases")
    assert f"champion={champion}" in aliases.split(), aliases

    # songrec-api, waiting for a champion since it started, serves it and logs to PostgreSQL.
    mark = time.monotonic()

    def api_ready() -> dict[str, Any] | None:
        try:
            ready = requests.get(f"{api_url}/ready", timeout=5)
        except requests.RequestException:
            return None
        return ready.json() if ready.status_code == 200 else None

    ready = wait_for("songrec-api /ready", api_ready, 300, 2)
    timings["API ready after the run"] = time.monotonic() - mark
    assert (ready["model_source"], str(ready["model_version"])) == ("registry", champion), ready
    found = requests.get(f"{api_url}/tracks", params={"q": "love"}, timeout=30).json()["tracks"]
    answer = requests.post(
        f"{api_url}/recommend", json={"track_ids": [t["track_id"] for t in found[:3]], "k": 5}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["recommendations"]) == 5
    request_id = uuid.UUID(answer.json()["request_id"])

    def logged() -> str:
        query = f"SELECT endpoint || ' v' || model_version FROM requests WHERE request_id = '{request_id}'"
        try:
            return compose.sql("songrec_events", query)
        except AssertionError:  # the writer creates the tables with its first batch
            return ""

    assert wait_for("the /recommend request in PostgreSQL", logged, 60, 1) == f"/recommend v{champion}"

    # Every container passes its own healthcheck (the one-shot services exited 0).
    def all_healthy() -> dict[str, str] | None:
        health = compose.health()
        wanted = {"minio-buckets": "exited 0", "airflow-init": "exited 0"}
        return health if all(state == wanted.get(name, "healthy") for name, state in health.items()) else None

    health = wait_for("every container healthy", all_healthy, 300, 5)
    assert set(health) == set(services), health
    print(
        _run(["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"], 120, "docker stats")
    )
    print("timings: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items()))
