"""The evaluate stage against real MLflow servers over HTTP, with and without basic auth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests

from tests.conftest import run_cli
from tests.services import mlflow_server

pytestmark = pytest.mark.slow


@pytest.fixture
def project_copy(trained_project: Path, tmp_path: Path) -> Path:
    """The trained sample project, copied so that each server gets its own runs."""
    copy = tmp_path / "project"
    shutil.copytree(trained_project, copy, ignore=shutil.ignore_patterns("mlruns"))
    return copy


def test_runs_and_registry_go_to_a_tracking_server(project_copy: Path, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    with mlflow_server(tmp_path / "server") as url:
        env = {"MLFLOW_TRACKING_URI": url}
        run_cli("songrec", "run", "evaluate", cwd=project_copy, env=env)
        run_cli("songrec", "run", "evaluate", cwd=project_copy, env=env)
        promotion = json.loads((project_copy / "reports/promotion.json").read_text())
        client = MlflowClient(tracking_uri=url, registry_uri=url)
        run = client.get_run(promotion["run_id"])
        assert run.data.tags["dataset.sha256"]
        assert "recall_at_100" in run.data.metrics and "reference.recall_at_100" in run.data.metrics
        artifacts = {a.path for a in client.list_artifacts(promotion["run_id"])}
        assert {"plots", "metrics", "reports"} <= artifacts
        assert promotion["challenger_version"] == "2"
        assert promotion["champion_metrics"] is not None  # the second run measured the first champion
        # A pipeline run registers a candidate; `songrec promote` releases it, through the gate.
        assert client.get_model_version_by_alias("songrec", "champion").version == "1"
        assert client.get_model_version_by_alias("songrec", "challenger").version == "2"
        released = run_cli("songrec", "promote", cwd=project_copy, env=env)
        assert "songrec v2 released" in released.stdout
        assert client.get_model_version_by_alias("songrec", "champion").version == "2"
    assert not (project_copy / "mlruns").exists()  # nothing went to the local store


def test_basic_auth_server_stands_in_for_dagshub(
    project_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    with mlflow_server(tmp_path / "auth-server", auth_password="S0ngrec-admin-pass") as url:
        assert (
            requests.get(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10).status_code
            == 401
        )
        denied = run_cli(
            "songrec", "run", "evaluate", cwd=project_copy, env={"MLFLOW_TRACKING_URI": url}, check=False
        )
        assert denied.returncode == 1
        assert f"cannot use MLflow at {url}" in denied.stderr
        env = {
            "MLFLOW_TRACKING_URI": url,
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": "S0ngrec-admin-pass",
        }
        run_cli("songrec", "run", "evaluate", cwd=project_copy, env=env)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "S0ngrec-admin-pass")
        client = MlflowClient(tracking_uri=url, registry_uri=url)
        assert client.get_model_version_by_alias("songrec", "champion").version == "1"
