"""docker-compose.yaml's topology, run as processes of this machine (test_engine.py runs it as
containers where a Docker engine answers; this one needs none).

The services get the environment docker-compose.yaml gives them, with the compose network's
addresses replaced by this machine's: PostgreSQL (databases and roles made by the compose init
script), Redis (one database number), moto's S3 server in MinIO's place. Each service runs
through docker/entrypoint.sh with the role its compose service names: bucket creation,
airflow-init, MLflow (PostgreSQL backend, artifacts in S3 behind the server), Airflow's API
server, scheduler, DAG processor and one Celery worker, and the API. The REST API triggers
songrec_training; then the test checks that every task ran on the Celery worker, that the model
is in S3 and the registry in PostgreSQL, that the API serves the new champion and logs to
PostgreSQL, that Grafana's role reads the events, and that DVC pushes to and pulls from S3.
Everything started is stopped; the databases and roles are dropped, the Redis database flushed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from tests.conftest import ROOT, free_port, make_project
from tests.services import wait_http
from tests.topology.conftest import (
    ENV_EXAMPLE,
    PG_INIT,
    RAN_TASKS,
    SERVICE_BIN,
    SKIPPED_TASKS,
    MemoryWatch,
    clean_environment,
    load_compose,
    read_env_file,
    run_role,
    run_songrec_training,
    service,
    service_environment,
    wait_for,
)

pytestmark = pytest.mark.slow

PG = "postgresql+psycopg://{user}:{password}@127.0.0.1:5432/{db}"
REDIS_DB = 13  # a database number nothing else here uses; flushed before and after


@dataclass(frozen=True)
class Database:
    name: str
    user: str
    password: str

    def url(self, scheme: str = "postgresql+psycopg") -> str:
        return f"{scheme}://{self.user}:{self.password}@127.0.0.1:5432/{self.name}"


@dataclass(frozen=True)
class Databases:
    airflow: Database
    mlflow: Database
    events: Database
    grafana_user: str


def query(database: str, sql: str, params: Any = (), user: str = "postgres") -> list[tuple[Any, ...]]:
    """Rows of `sql` in `database` on the machine's PostgreSQL, as `user` (trust authentication)."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=5432, user=user, dbname=database) as connection:
        cursor = connection.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def databases() -> Iterator[Databases]:
    """The three databases and four roles of the compose topology, made by its own init script."""
    tag = f"songrec_t_{secrets.token_hex(4)}"
    made = Databases(
        airflow=Database(f"{tag}_airflow", f"{tag}_airflow", secrets.token_urlsafe(16)),
        mlflow=Database(f"{tag}_mlflow", f"{tag}_mlflow", secrets.token_urlsafe(16)),
        events=Database(f"{tag}_events", f"{tag}_events", secrets.token_urlsafe(16)),
        grafana_user=f"{tag}_grafana",
    )
    env = {
        "PGHOST": "127.0.0.1",
        "PGPORT": "5432",
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": "postgres",
        "AIRFLOW_DB_NAME": made.airflow.name,
        "AIRFLOW_DB_USER": made.airflow.user,
        "AIRFLOW_DB_PASSWORD": made.airflow.password,
        "MLFLOW_DB_NAME": made.mlflow.name,
        "MLFLOW_DB_USER": made.mlflow.user,
        "MLFLOW_DB_PASSWORD": made.mlflow.password,
        "EVENTS_DB_NAME": made.events.name,
        "EVENTS_DB_USER": made.events.user,
        "EVENTS_DB_PASSWORD": made.events.password,
        "GRAFANA_DB_USER": made.grafana_user,
        "GRAFANA_DB_PASSWORD": secrets.token_urlsafe(16),
    }
    created = subprocess.run(
        ["bash", str(PG_INIT)], env=clean_environment(env), capture_output=True, text=True, timeout=60
    )
    try:
        assert created.returncode == 0, created.stderr
        yield made
    finally:
        import psycopg

        with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as pg:
            for database in (made.airflow, made.mlflow, made.events):
                pg.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
            for role in (made.airflow.user, made.mlflow.user, made.events.user, made.grafana_user):
                pg.execute(f'DROP ROLE IF EXISTS "{role}"')
            left = pg.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{tag}%",)
            ).fetchall()
        assert not left, f"databases left behind: {left}"


@pytest.fixture
def broker() -> Iterator[str]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    client.flushdb()
    try:
        yield f"redis://127.0.0.1:6379/{REDIS_DB}"
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def s3() -> Iterator[str]:
    """moto's S3 server in MinIO's place."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    import boto3

    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def here(
    compose_env: Mapping[str, str], replaced: Mapping[str, str], added: Mapping[str, str]
) -> dict[str, str]:
    """A compose service's environment on this machine: `replaced` swaps compose-network addresses
    (each key must exist in compose, so a renamed variable fails here), `added` is what one host
    needs besides (ports, the release folder)."""
    unknown = sorted(set(replaced) - set(compose_env))
    assert not unknown, f"docker-compose.yaml no longer sets {unknown}"
    return {**compose_env, **replaced, **added}


def test_the_compose_topology_runs_as_processes(
    tmp_path: Path, sample_frame: pd.DataFrame, databases: Databases, broker: str, s3: str
) -> None:
    started = time.monotonic()
    timings: dict[str, float] = {}
    logs = tmp_path / "logs"
    logs.mkdir()
    release = make_project(tmp_path / "release", sample_frame)  # the project as the image ships it
    (release / ".dvc").mkdir()
    shutil.copy(ROOT / ".dvc" / "config", release / ".dvc" / "config")
    workspace, home = tmp_path / "workspace", tmp_path / "airflow_home"
    port = {name: free_port() for name in ("airflow", "mlflow", "api", "scheduler", "worker_logs")}
    airflow_url, mlflow_url = f"http://127.0.0.1:{port['airflow']}", f"http://127.0.0.1:{port['mlflow']}"
    api_url = f"http://127.0.0.1:{port['api']}"

    # .env: the example's settings, with fresh secrets.
    dotenv = read_env_file(ENV_EXAMPLE)
    dotenv.update({key: secrets.token_urlsafe(64) for key in dotenv if "change-me" in dotenv[key]})
    compose = load_compose(dotenv)
    s3_env = {
        "AWS_ENDPOINT_URL": s3,
        "AWS_ACCESS_KEY_ID": dotenv["MINIO_ROOT_USER"],
        "AWS_SECRET_ACCESS_KEY": dotenv["MINIO_ROOT_PASSWORD"],
    }
    common = {"MLFLOW_TRACKING_URI": mlflow_url, **s3_env}
    on_host = {"SONGREC_RELEASE": str(release)}
    buckets_env = here(service_environment(compose, "minio-buckets"), s3_env, on_host)
    mlflow_env = here(
        service_environment(compose, "mlflow"),
        {**common, "MLFLOW_BACKEND_STORE_URI": databases.mlflow.url(), "MLFLOW_S3_ENDPOINT_URL": s3,
         "MLFLOW_WORKERS": "1"},
        {**on_host, "MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": str(port["mlflow"])},
    )  # fmt: skip
    airflow_env = here(
        service_environment(compose, "airflow-scheduler"),
        {
            **common,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(workspace / "dags"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{airflow_url}/execution/",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": databases.airflow.url(),
            "AIRFLOW__CELERY__BROKER_URL": broker,  # the machine's Redis has no password
            "AIRFLOW__CELERY__RESULT_BACKEND": databases.airflow.url("db+postgresql+psycopg"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "SONGREC_ROOT": str(workspace),
            "SONGREC_API_URL": api_url,
            "SONGREC_EVENT_STORE_URL": databases.events.url(),
        },
        {
            **on_host,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port["airflow"]),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(port["scheduler"]),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port["worker_logs"]),
        },
    )
    apiserver_env = {**airflow_env, "AIRFLOW_ADMIN_PASSWORD": dotenv["AIRFLOW_ADMIN_PASSWORD"]}
    assert service_environment(compose, "airflow-apiserver")["AIRFLOW_ADMIN_PASSWORD"]
    api_env = here(
        service_environment(compose, "songrec-api"),
        {**common, "SONGREC_ROOT": str(release), "SONGREC_EVENT_STORE_URL": databases.events.url()},
        {**on_host, "SONGREC_API_HOST": "127.0.0.1", "SONGREC_API_PORT": str(port["api"]),
         "SONGREC_CHAMPION_POLL_SECONDS": "2"},
    )  # fmt: skip
    assert api_env["SONGREC_ADMIN_TOKEN"] == airflow_env["SONGREC_ADMIN_TOKEN"]

    # One-shot services: buckets, then airflow-init (workspace, migration, pool, DVC remote).
    buckets = compose["services"]["minio-buckets"]["command"]
    made = run_role(*buckets, env=buckets_env)
    assert made.returncode == 0, made.stderr
    mark = time.monotonic()
    init = run_role("airflow-init", env=airflow_env, timeout=600)
    assert init.returncode == 0, f"{init.stdout}\n{init.stderr}"
    timings["airflow-init"] = time.monotonic() - mark
    remote = (workspace / ".dvc" / "config.local").read_text()
    assert "s3://songrec-dvc/store" in remote and s3 in remote and "no_scm = true" in remote
    assert [
        row[0]
        for row in query(databases.airflow.name, "SELECT slots FROM slot_pool WHERE pool = 'songrec_dvc'")
    ] == [1]

    watch = MemoryWatch()
    with watch, ExitStack() as stack:
        entry = ["bash", str(ROOT / "docker" / "entrypoint.sh")]

        def start(name: str, args: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
            process = stack.enter_context(service(name, [*entry, *args], env, logs, cwd=tmp_path))
            watch.watch(name, process)
            return process

        mark = time.monotonic()
        mlflow = start("mlflow", ["mlflow"], mlflow_env)
        apiserver = start("airflow-apiserver", ["airflow", "api-server"], apiserver_env)
        start("airflow-scheduler", ["airflow", "scheduler"], airflow_env)
        start("airflow-dag-processor", ["airflow", "dag-processor"], airflow_env)
        worker = start("airflow-worker", ["airflow", "celery", "worker"], airflow_env)
        api = start("songrec-api", ["api"], api_env)
        wait_http(f"{mlflow_url}/health", mlflow, logs / "mlflow.log", timeout=300)
        wait_http(
            f"{airflow_url}/api/v2/monitor/health", apiserver, logs / "airflow-apiserver.log", timeout=300
        )
        timings["services healthy"] = time.monotonic() - mark

        # The compose healthchecks, run against the processes.
        def healthy(*args: str, env: Mapping[str, str] = airflow_env) -> bool:
            return run_role("health", *args, env=env, timeout=120).returncode == 0

        assert healthy("http", f"{mlflow_url}/health", env=mlflow_env)
        assert healthy("http", f"{airflow_url}/api/v2/monitor/health")
        wait_for(
            "scheduler health",
            lambda: healthy("http", f"http://127.0.0.1:{port['scheduler']}/health"),
            120,
            3,
        )
        wait_for("Celery worker ping", lambda: healthy("celery"), 180, 3)
        wait_for("DAG processor job", lambda: healthy("job", "DagProcessorJob"), 180, 3)
        assert not healthy("job", "TriggererJob"), "no triggerer runs here: its check must fail"

        # MLflow accepts the compose network's Host header and refuses a foreign one.
        search = f"{mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1"
        assert requests.get(search, headers={"Host": "mlflow:5000"}, timeout=30).status_code == 200
        assert requests.get(search, headers={"Host": "attacker.example"}, timeout=30).status_code == 403

        # Trigger songrec_training through the REST API v2.
        mark = time.monotonic()
        run = run_songrec_training(airflow_url, dotenv["AIRFLOW_ADMIN_PASSWORD"], 1200)
        timings["songrec_training run"] = time.monotonic() - mark
        assert run.state == "success", {t["task_id"]: t["state"] for t in run.tasks}
        run_id, evaluate = run.run_id, run.evaluate
        assert evaluate["promoted"] is True, evaluate
        champion = str(evaluate["champion_version_after"])

        # 1. Every task ran on the Celery worker: a Celery task id, received by the worker's log,
        # with its result in Celery's result backend (the Airflow database).
        instances = query(
            databases.airflow.name,
            "SELECT task_id, state, hostname, queued_by_job_id, external_executor_id FROM task_instance"
            " WHERE dag_id = 'songrec_training' AND run_id = %s",
            (run_id,),
        )
        states = {row[0]: row[1] for row in instances}
        assert states == {**dict.fromkeys(RAN_TASKS, "success"), **dict.fromkeys(SKIPPED_TASKS, "skipped")}
        instances = [row for row in instances if row[0] in RAN_TASKS]
        worker_log = (logs / "airflow-worker.log").read_text()
        for task_id, ti_state, hostname, queued_by, celery_id in instances:
            assert (ti_state, bool(hostname), bool(queued_by)) == ("success", True, True), task_id
            assert celery_id and f"execute_workload[{celery_id}]" in worker_log, f"{task_id}: {celery_id}"
        celery_ids = [row[4] for row in instances]

        def celery_results() -> bool:  # the last one is written just after Airflow's own record
            sql = "SELECT status FROM celery_taskmeta WHERE task_id = ANY(%s)"
            statuses = [row[0] for row in query(databases.airflow.name, sql, (celery_ids,))]
            return len(statuses) == len(RAN_TASKS) and set(statuses) == {"SUCCESS"}

        wait_for("every Celery result SUCCESS in the result backend", celery_results, 60)

        # 2. The model's artifacts are in S3, uploaded through the MLflow server.
        keys = s3_keys(s3, "songrec-mlflow", "artifacts/")
        assert any(key.endswith("/MLmodel") for key in keys), keys
        assert any(key.endswith("bundle.pkl") for key in keys), keys
        locations = query(
            databases.mlflow.name, "SELECT artifact_location FROM experiments WHERE name = 'songrec'"
        )
        assert locations and locations[0][0].startswith("mlflow-artifacts:"), locations

        # 3. The registry is in PostgreSQL.
        assert query(databases.mlflow.name, "SELECT name FROM registered_models") == [("songrec",)]
        versions = query(
            databases.mlflow.name, "SELECT version, status, run_id FROM model_versions WHERE name = 'songrec'"
        )
        assert [(str(v), s, r) for v, s, r in versions] == [(champion, "READY", evaluate["run_id"])]
        aliases = query(
            databases.mlflow.name,
            "SELECT alias, version FROM registered_model_aliases WHERE name = 'songrec'",
        )
        assert ("champion", int(champion)) in aliases, aliases

        # 4. The API (waiting since its start) serves the new champion, and logs to PostgreSQL.
        mark = time.monotonic()
        wait_http(f"{api_url}/ready", api, logs / "songrec-api.log", timeout=180)
        timings["API ready after the run"] = time.monotonic() - mark
        ready = requests.get(f"{api_url}/ready", timeout=30).json()
        assert (ready["model_source"], str(ready["model_version"])) == ("registry", champion), ready
        reload = requests.post(
            f"{api_url}/admin/reload",
            headers={"Authorization": f"Bearer {api_env['SONGREC_ADMIN_TOKEN']}"},
            timeout=120,
        )
        assert reload.status_code == 200 and str(reload.json()["model_version"]) == champion, reload.text
        found = requests.get(f"{api_url}/tracks", params={"q": "a"}, timeout=30).json()["tracks"]
        answer = requests.post(
            f"{api_url}/recommend", json={"track_ids": [t["track_id"] for t in found[:3]], "k": 5}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        request_id = uuid.UUID(answer.json()["request_id"])
        import psycopg

        def logged_request() -> list[tuple[Any, ...]]:
            try:  # the API's writer process creates the tables with its first batch
                sql = "SELECT endpoint, model_version FROM requests WHERE request_id = %s"
                return query(databases.events.name, sql, (request_id,))
            except psycopg.errors.UndefinedTable:
                return []

        logged = wait_for("the /recommend request in the event store", logged_request, 30)
        assert logged == [("/recommend", champion)]
        # Grafana's role reads the events and cannot change them.
        grafana = query(
            databases.events.name,
            "SELECT count(*) FROM recommendations WHERE request_id = %s",
            (request_id,),
            user=databases.grafana_user,
        )
        assert grafana == [(5,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            query(databases.events.name, "DELETE FROM requests", user=databases.grafana_user)
        with pytest.raises(psycopg.OperationalError, match="CONNECT"):
            query(databases.airflow.name, "SELECT 1", user=databases.grafana_user)

        watch.sample()
        assert worker.poll() is None and api.poll() is None
        groups = list(watch.groups.values())
    timings["services stopped"] = time.monotonic() - started
    for pgid in groups:
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)

    # 5. DVC on S3 (moto in MinIO's place): push the run's outputs, lose them, pull them back.
    dvc_env = clean_environment({**s3_env, "SONGREC_ROOT": str(workspace)})
    mark = time.monotonic()

    def dvc(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(SERVICE_BIN / "dvc"), *args],
            cwd=workspace,
            env=dvc_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"dvc {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done

    assert (
        subprocess.run([str(SERVICE_BIN / "dvc"), "status", "-q"], cwd=workspace, env=dvc_env).returncode == 0
    )
    dvc("push")
    assert len(s3_keys(s3, "songrec-dvc", "store/")) >= 8
    catalog = workspace / "data" / "processed" / "catalog.parquet"
    expected = catalog.read_bytes()
    shutil.rmtree(workspace / ".dvc" / "cache")
    catalog.unlink()
    dvc("pull")
    assert catalog.read_bytes() == expected
    timings["dvc push + pull"] = time.monotonic() - mark

    print(watch.report())
    print("timings: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items()))
    print(f"total {time.monotonic() - started:.0f} s")
