"""docker-compose.yaml, offline: valid for compose, complete, secrets only from .env, and its
Grafana provisioning consistent with it. No Docker engine is needed (test_engine.py runs it on one)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.topology.conftest import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    GRAFANA,
    PG_INIT,
    interpolate,
    load_compose,
    read_env_file,
    service_environment,
)

# The schema docker-compose 1.29 validates with (Debian package docker-compose / python3-compose).
COMPOSE_SPEC = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")

AIRFLOW = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
SERVICES = {
    "postgres",
    "redis",
    "minio",
    "minio-buckets",
    "mlflow",
    "airflow-init",
    *AIRFLOW,
    "songrec-api",
    "songrec-stream",
    "prometheus",
    "grafana",
}
ONE_SHOT = {"minio-buckets", "airflow-init"}
# Waits for a start only: the API is unhealthy until the first champion, Prometheus records that.
STARTED_ONLY = {("prometheus", "songrec-api")}
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|ACCESS_KEY", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def _docker_compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file), *args],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")},  # no shell secrets
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian) not installed")
def test_docker_compose_config_accepts_the_file_with_the_example_env(tmp_path: Path) -> None:
    result = _docker_compose("config", "-q", env_file=ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(_docker_compose("config", env_file=ENV_EXAMPLE).stdout)
    assert set(rendered["services"]) == SERVICES
    # Without the secrets it refuses to render, and says which variable is missing.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    refused = _docker_compose("config", "-q", env_file=empty)
    assert refused.returncode != 0
    assert "set " in refused.stderr and "in .env" in refused.stderr, refused.stderr


@pytest.mark.skipif(not COMPOSE_SPEC.is_file(), reason="the compose specification's schema is not installed")
def test_the_file_follows_the_compose_specification_schema() -> None:
    import jsonschema

    schema = json.loads(COMPOSE_SPEC.read_text())
    document = yaml.safe_load(COMPOSE_FILE.read_text())  # merge keys resolved, ${...} kept
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_every_service_of_the_topology_is_there_with_a_healthcheck(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name, spec in services.items():
        if name in ONE_SHOT:
            assert spec.get("restart") == "no", f"{name} runs once: it must not restart"
            assert "healthcheck" not in spec
        else:
            assert spec["healthcheck"]["test"], f"{name} has no healthcheck"
            assert spec.get("restart") == "unless-stopped", name


def test_depends_on_waits_for_health_or_completion(compose: dict) -> None:
    services = compose["services"]
    for name, spec in services.items():
        for needed, rule in (spec.get("depends_on") or {}).items():
            assert needed in services and needed != name, f"{name} depends on {needed}"
            expected = "service_completed_successfully" if needed in ONE_SHOT else "service_healthy"
            if (name, needed) in STARTED_ONLY:
                expected = "service_started"
            assert rule == {"condition": expected}, f"{name} -> {needed}: {rule}"
    for name in AIRFLOW:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert {"mlflow", "airflow-apiserver"} <= set(services["airflow-worker"]["depends_on"])
    assert {"postgres", "mlflow"} <= set(services["songrec-api"]["depends_on"])
    assert set(services["mlflow"]["depends_on"]) == {"postgres", "minio-buckets"}

    def reaches(start: str, seen: tuple[str, ...] = ()) -> None:
        assert start not in seen, f"dependency cycle: {' -> '.join((*seen, start))}"
        for needed in services[start].get("depends_on") or {}:
            reaches(needed, (*seen, start))

    for name in services:
        reaches(name)


def test_airflow_runs_on_celery_with_one_configuration_and_the_shared_workspace(compose: dict) -> None:
    services = compose["services"]
    base = service_environment(compose, "airflow-scheduler")
    assert base["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert base["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
    assert base["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg://")
    assert base["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert len(base["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 64, "the example JWT secret is too short"
    assert base["AIRFLOW__CORE__DAGS_FOLDER"] == f"{base['SONGREC_ROOT']}/dags"
    assert base["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    for name in (*AIRFLOW, "airflow-init"):
        env = service_environment(compose, name)
        shared = {key: value for key, value in env.items() if key != "AIRFLOW_ADMIN_PASSWORD"}
        assert shared == base, f"{name} has its own Airflow configuration"
        assert f"songrec-workspace:{base['SONGREC_ROOT']}" in services[name]["volumes"]
        assert "airflow-logs:/opt/airflow/logs" in services[name]["volumes"]
    worker = services["airflow-worker"]
    assert "ports" not in worker and "container_name" not in worker, "the worker must scale (--scale)"
    assert service_environment(compose, "airflow-apiserver")["AIRFLOW_ADMIN_PASSWORD"]
    assert "AIRFLOW_ADMIN_PASSWORD" not in service_environment(compose, "airflow-worker")


def test_mlflow_runs_on_postgresql_with_artifacts_in_s3_behind_the_server(compose: dict) -> None:
    env = service_environment(compose, "mlflow")
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://mlflow:")
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")
    assert env["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://songrec-mlflow/")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "songrec-mlflow" in compose["services"]["minio-buckets"]["command"]
    # Clients reach it as http://mlflow:5000: that Host header must pass its DNS-rebinding check.
    assert "mlflow:5000" in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    for name in ("songrec-api", "songrec-stream", "airflow-worker"):
        client = service_environment(compose, name)
        assert client["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert "MLFLOW_S3_ENDPOINT_URL" not in client, "clients get artifacts through the server"


def test_the_api_serves_from_the_registry_and_logs_to_postgresql(compose: dict) -> None:
    env = service_environment(compose, "songrec-api")
    assert env["SONGREC_EVENT_STORE_URL"].startswith("postgresql+psycopg://songrec:")
    assert env["SONGREC_EVENT_STORE_URL"].endswith("@postgres:5432/songrec_events")
    assert compose["services"]["songrec-api"]["command"] == ["api"]
    airflow = service_environment(compose, "airflow-worker")
    assert airflow["SONGREC_API_URL"] == "http://songrec-api:8000"
    assert airflow["SONGREC_ADMIN_TOKEN"] == env["SONGREC_ADMIN_TOKEN"]
    assert airflow["SONGREC_DVC_REMOTE_URL"] == "s3://songrec-dvc/store"
    # The monitoring DAG writes to the event store as the API's role, where Grafana can read it.
    assert airflow["SONGREC_EVENT_STORE_URL"] == env["SONGREC_EVENT_STORE_URL"]
    assert "songrec-dvc" in compose["services"]["minio-buckets"]["command"]


def test_the_api_reads_the_batch_output_the_workers_write(compose: dict) -> None:
    # songrec_batch_scoring runs `songrec batch recommend` on a worker, under its project root.
    workspace = service_environment(compose, "airflow-worker")["SONGREC_ROOT"]
    output_dir = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["batch"]["output_dir"]
    api = service_environment(compose, "songrec-api")
    assert api["SONGREC_BATCH_DIR"] == f"{workspace}/{output_dir}"
    assert f"songrec-workspace:{workspace}:ro" in compose["services"]["songrec-api"]["volumes"]


def test_the_stream_scorer_reads_redis_follows_the_champion_and_scales(compose: dict) -> None:
    stream = compose["services"]["songrec-stream"]
    env = service_environment(compose, "songrec-stream")
    password = service_environment(compose, "redis")["REDISCLI_AUTH"]
    assert password and env["SONGREC_STREAM_URL"] == f"redis://:{password}@redis:6379/0"
    assert "wait-champion" in stream["command"][-1] and stream["command"][-1].endswith("exec songrec stream")
    assert "ports" not in stream and "container_name" not in stream, "the scorer must scale (--scale)"
    assert stream["healthcheck"]["test"][-1] == "http://localhost:9108/metrics"  # config stream.metrics_port
    assert set(stream["depends_on"]) == {"redis", "mlflow"}


def test_postgres_creates_the_three_databases_with_its_init_script(compose: dict) -> None:
    postgres = compose["services"]["postgres"]
    assert (
        "./docker/postgres/init-databases.sh:/docker-entrypoint-initdb.d/10-songrec.sh:ro"
        in postgres["volumes"]
    )
    assert PG_INIT.stat().st_mode & 0o111, "the init script must be executable"
    script = PG_INIT.read_text()
    for variable in re.findall(r"\$\{?([A-Z_]+_PASSWORD)", script):
        assert variable in service_environment(compose, "postgres"), variable


def test_secrets_come_only_from_the_env_file() -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    example = read_env_file(ENV_EXAMPLE)
    for name, spec in raw["services"].items():
        for key, value in (spec.get("environment") or {}).items():
            if SECRET.search(key) and not key.endswith("_FILE"):
                assert "${" in str(value), f"{name}: {key} is written in the compose file"
    text = COMPOSE_FILE.read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+)(?::?\?[^}]*)?\}", text))
    missing = sorted(name for name in required if not example.get(name))
    assert not missing, f".env.example lacks {missing}"
    # .env is ignored by git and by the image's build context.
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(raw["services"]["postgres"], {})


def test_host_ports_bind_to_localhost_by_default(compose: dict) -> None:
    published = {name: spec["ports"] for name, spec in compose["services"].items() if spec.get("ports")}
    assert {name: len(ports) for name, ports in published.items()} == {
        "minio": 2,
        "mlflow": 1,
        "airflow-apiserver": 1,
        "songrec-api": 1,
        "prometheus": 1,
        "grafana": 1,
    }
    for ports in published.values():
        assert all(port.startswith("127.0.0.1:") for port in ports), ports


def test_grafana_is_provisioned_with_the_event_store_and_the_dashboard_folder(compose: dict) -> None:
    grafana = compose["services"]["grafana"]
    env = service_environment(compose, "grafana")
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "songrec-events.yaml").read_text())
    (source,) = sources["datasources"]
    assert (source["uid"], source["type"]) == ("songrec-events", "grafana-postgresql-datasource")
    used = set(re.findall(r"\$\{([A-Z_]+)\}", json.dumps(source)))
    assert used and used <= set(env), f"the datasource reads {used - set(env)} that grafana lacks"
    assert env["SONGREC_EVENTS_DB_NAME"] == "songrec_events"
    assert env["SONGREC_GRAFANA_DB_USER"] == "grafana"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "songrec.yaml").read_text())
    (provider,) = providers["providers"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in grafana["volumes"] if volume.startswith("./"))
    assert mounts["./monitoring/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
