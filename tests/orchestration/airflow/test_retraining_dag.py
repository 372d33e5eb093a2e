"""songrec_retraining under dag.test(): skips without new data; takes it in, retrains and promotes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pendulum
import pytest

from tests.conftest import SOURCE, edit_yaml, free_port, run_cli
from tests.orchestration.airflow.conftest import dvc_project, fresh_dagbag, task_states

pytestmark = pytest.mark.slow

STAGES = ["ingest", "validate", "transform", "train_reference", "train", "evaluate"]


@pytest.fixture(scope="module")
def trained(airflow_db: None, tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame) -> Path:
    """A sampled project with a first champion (trained by dvc repro)."""
    project = dvc_project(tmp_path_factory.mktemp("af-retrain") / "project", sample_frame)
    # The sample evaluates on a handful of playlists, so the gate's intervals are tens of points
    # wide; this project takes the widest tolerance the configuration allows, to test the path.
    edit_yaml(
        project / "params.yaml",
        {
            f"evaluate.promotion.tolerances.{name}": 0.1
            for name in ("recall_at_100", "genre_macro_f1", "popularity_r2")
        },
    )
    run_cli("dvc", "repro", cwd=project)
    return project


def retrain(project: Path, day: int, **conf: object):  # type: ignore[no-untyped-def]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SONGREC_ROOT", str(project))
        patch.setenv("SONGREC_API_URL", f"http://127.0.0.1:{free_port()}")  # nobody listens
        patch.setenv("SONGREC_ADMIN_TOKEN", "t")
        return (
            fresh_dagbag()
            .get_dag("songrec_retraining")
            .test(logical_date=pendulum.datetime(2026, 11, day, tz="UTC"), run_conf=conf or None)
        )


def test_without_new_data_nothing_is_trained(trained: Path) -> None:
    lock = (trained / "dvc.lock").read_text()
    run = retrain(trained, 1)
    states = task_states(run)
    assert str(run.state) == "success", states
    assert states["nothing_to_do"] == "success"
    assert all(states[name] == "skipped" for name in ["merge_new_data", *STAGES, "reload_api"])
    plan = run.get_task_instance("detect_new_data").xcom_pull(task_ids="detect_new_data", key="plan")
    assert plan["reason"] == "no new files"
    assert (trained / "dvc.lock").read_text() == lock


def test_new_data_is_taken_in_trained_gated_and_promoted(trained: Path, sample_frame: pd.DataFrame) -> None:
    everything = pd.read_csv(SOURCE)
    others = everything[~everything["playlist_id"].isin(sample_frame["playlist_id"])]
    new = others[others["playlist_id"].isin(sorted(others["playlist_id"].unique())[:12])]
    incoming = trained / "data" / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    new.to_csv(incoming / "new-playlists.csv.gz", index=False, compression="gzip")

    run = retrain(trained, 2, reason="test: new playlists")
    states = task_states(run)
    assert str(run.state) == "success", states
    assert states["nothing_to_do"] == "skipped"
    assert all(states[name] == "success" for name in ["merge_new_data", *STAGES, "release", "reload_api"])
    plan = run.get_task_instance("detect_new_data").xcom_pull(task_ids="detect_new_data", key="plan")
    assert plan["train"] and plan["new_rows"] == len(new) and plan["trigger_reason"] == "test: new playlists"
    evaluate = run.get_task_instance("evaluate").xcom_pull(task_ids="evaluate")
    # The pipeline registers a candidate; the production path's release task moves champion.
    assert evaluate["promoted"] is False and evaluate["challenger_version"] == "2"
    assert evaluate["champion_version_before"] == evaluate["champion_version_after"] == "1"
    released = run.get_task_instance("release").xcom_pull(task_ids="release")
    assert released["challenger_version"] == "2" and released["promoted"] is True, released
    reload = run.get_task_instance("reload_api").xcom_pull(task_ids="reload_api")
    assert reload["requested"] is True and reload["ok"] is False  # the API was down: logged, not fatal
    record = json.loads((trained / "data/raw/ingestion.json").read_text())
    assert record["rows"] == len(sample_frame) + len(new)
    assert run_cli("dvc", "status", "-q", cwd=trained, check=False).returncode == 0

    # The same logical date again: the same addition, nothing for DVC to redo.
    lock = (trained / "dvc.lock").read_text()
    rerun = retrain(trained, 2)
    assert str(rerun.state) == "success"
    assert task_states(rerun)["merge_new_data"] in {"success", "skipped"}
    assert (trained / "dvc.lock").read_text() == lock
