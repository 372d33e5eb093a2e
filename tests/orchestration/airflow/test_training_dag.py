"""songrec_training under dag.test(): runs the registry's stages through DVC, on a data sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli
from tests.orchestration.airflow.conftest import dvc_project, fresh_dagbag, task_states

pytestmark = pytest.mark.slow

STAGES = ["ingest", "validate", "transform", "train_reference", "train", "evaluate"]


@pytest.fixture(scope="module")
def trained_by_airflow(
    airflow_db: None, tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame
) -> tuple[Path, object]:
    project = dvc_project(tmp_path_factory.mktemp("af-train") / "project", sample_frame)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SONGREC_ROOT", str(project))
        run = fresh_dagbag().get_dag("songrec_training").test()
    return project, run


def test_every_stage_task_succeeds_in_order(trained_by_airflow) -> None:  # type: ignore[no-untyped-def]
    _, run = trained_by_airflow
    states = task_states(run)
    assert str(run.state) == "success", states
    assert all(states[name] == "success" for name in ["plan", "route", *STAGES])
    assert states["experiment"] == "skipped"  # no overrides: the workspace's own pipeline
    assert states["release"] == "skipped"  # `release` off: the run registers a candidate only


def test_run_id_and_promotion_are_xcom(trained_by_airflow) -> None:  # type: ignore[no-untyped-def]
    project, run = trained_by_airflow
    summary = run.get_task_instance("evaluate").xcom_pull(task_ids="evaluate")
    promotion = json.loads((project / "reports/promotion.json").read_text())
    assert summary["ran"] is True
    assert summary["run_id"] == promotion["run_id"]
    assert summary["promoted"] is True
    assert summary["champion_version_after"] == "1"


def test_dvc_status_is_clean_and_metrics_match_dvc_repro(
    trained_by_airflow, tmp_path: Path, sample_frame: pd.DataFrame
) -> None:  # type: ignore[no-untyped-def]
    project, _ = trained_by_airflow
    assert run_cli("dvc", "status", "-q", cwd=project, check=False).returncode == 0
    twin = dvc_project(tmp_path / "twin", sample_frame)
    run_cli("dvc", "repro", cwd=twin)
    for name in ("genre", "popularity", "recommender"):
        ours = json.loads((project / f"metrics/{name}.json").read_text())
        theirs = json.loads((twin / f"metrics/{name}.json").read_text())
        assert ours == theirs, name


def test_the_trigger_form_opens_valid(dagbag) -> None:  # type: ignore[no-untyped-def]
    """Every param's default passes its own schema, and none is required: the form can be
    submitted as it opens (a field that rejects its own default keeps Trigger disabled)."""
    params = dagbag.get_dag("songrec_training").params
    params.validate()  # raises on a default that breaks its schema
    for name in ("recommender", "genre_max_iter", "popularity_max_iter"):
        assert "null" in params.get_param(name).schema["type"], name  # empty is allowed


def test_overrides_run_as_an_experiment_beside_the_workspace(trained_by_airflow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The form's params run the pipeline in a scratch copy: params.yaml, dvc.lock and the
    outputs of the workspace stay as they are; the candidate lands in the shared registry."""
    import mlflow

    source, _ = trained_by_airflow
    project = tmp_path / "project"
    shutil.copytree(source, project)
    before = {name: (project / name).read_bytes() for name in ("params.yaml", "dvc.lock")}
    bundle = (project / "models/bundle/bundle.pkl").read_bytes()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SONGREC_ROOT", str(project))
        run = (
            fresh_dagbag()
            .get_dag("songrec_training")
            .test(
                run_conf={
                    "genre_max_iter": 40,
                    "params_overrides": {"train.recommender.regularization_c": 0.5},
                }
            )
        )
    states = task_states(run)
    assert str(run.state) == "success", states
    assert states["experiment"] == "success" and all(states[name] == "skipped" for name in STAGES)
    outcome = run.get_task_instance("experiment").xcom_pull(task_ids="experiment")
    assert outcome["params"] == {
        "train.genre.max_iter": [300, 40],
        "train.recommender.regularization_c": [1.0, 0.5],
    }
    assert {name: (project / name).read_bytes() for name in ("params.yaml", "dvc.lock")} == before
    assert (project / "models/bundle/bundle.pkl").read_bytes() == bundle
    assert not any((project / "var" / "experiments").iterdir())  # the scratch copy is gone
    store = f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    logged = client.get_run(outcome["run_id"]).data.params
    assert (logged["train.genre.max_iter"], logged["train.recommender.regularization_c"]) == ("40", "0.5")
    assert (
        str(client.get_model_version_by_alias("songrec", "challenger").version)
        == outcome["challenger_version"]
    )
    assert str(client.get_model_version_by_alias("songrec", "champion").version) == "1"  # not released


def test_a_bad_override_fails_before_any_stage(dagbag, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project = dvc_project(tmp_path / "project", None)
    before = (project / "params.yaml").read_text()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SONGREC_ROOT", str(project))
        run = dagbag.get_dag("songrec_training").test(
            run_conf={"params_overrides": {"train.genre.max_iter": -3}}
        )
    states = task_states(run)
    assert states["plan"] == "failed"
    assert all(states[name] == "upstream_failed" for name in [*STAGES, "experiment"])
    assert (project / "params.yaml").read_text() == before


def test_invalid_data_fails_validate_and_a_fixed_rerun_succeeds(
    trained_by_airflow, dagbag, tmp_path: Path, sample_frame: pd.DataFrame
) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    source, _ = trained_by_airflow
    project = tmp_path / "project"
    shutil.copytree(source, project)
    store = f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"
    registry = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    champion = registry.get_model_version_by_alias("songrec", "champion").version
    data = project / "data/source/spotify_songs.csv.gz"
    good = data.read_bytes()
    broken = sample_frame.copy()
    broken["danceability"] = 1.7
    broken.to_csv(data, index=False, compression="gzip")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SONGREC_ROOT", str(project))
        failed = dagbag.get_dag("songrec_training").test()
        states = task_states(failed)
        assert str(failed.state) == "failed"
        assert states["ingest"] == "success"
        assert states["validate"] == "failed"
        assert all(states[name] == "upstream_failed" for name in STAGES[2:])
        assert registry.get_model_version_by_alias("songrec", "champion").version == champion
        report = json.loads((project / "reports/validation.json").read_text())
        assert report["passed"] is False
        data.write_bytes(good)
        fixed = fresh_dagbag().get_dag("songrec_training").test()
    assert str(fixed.state) == "success", task_states(fixed)
    assert run_cli("dvc", "status", "-q", cwd=project, check=False).returncode == 0
