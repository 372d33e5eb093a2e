"""songrec_batch_scoring: daily and after every release, paused; under dag.test() it scores the playlists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.orchestration.airflow.conftest import fresh_dagbag, task_states


def test_the_batch_dag_runs_daily_and_after_a_release(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.get_dag("songrec_batch_scoring")
    assert dag.is_paused_upon_creation is True and dag.max_active_runs == 1
    assert set(dag.task_ids) == {"score_playlists"}
    summary = str(dag.timetable.summary)
    assert "songrec_champion" in str(dag.timetable.asset_condition) and "0 3 * * *" in summary, summary
    # Each release task updates the asset the batch DAG waits for.
    for dag_id in ("songrec_retraining", "songrec_training"):
        outlets = dagbag.get_dag(dag_id).get_task("release").outlets
        assert [asset.name for asset in outlets] == ["songrec_champion"]


def test_a_run_scores_every_known_playlist_and_says_where(
    airflow_db: None, trained_project: Path, tmp_path: Path
) -> None:
    project = shutil.copytree(trained_project, tmp_path / "project")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SONGREC_ROOT", str(project))
        run = fresh_dagbag().get_dag("songrec_batch_scoring").test()
    states = task_states(run)
    assert str(run.state) == "success", states
    report = run.get_task_instance("score_playlists").xcom_pull(task_ids="score_playlists")
    out = pd.read_parquet(report["output"])
    playlists = pd.read_parquet(project / "data/processed/memberships.parquet")["playlist_id"].nunique()
    assert report["items"] == out["playlist_id"].nunique() == playlists
    assert set(out["model_version"]) == {report["model_version"]}
    manifest = json.loads((project / "data/batch/recommend-latest.json").read_text())
    assert manifest["output"] == report["output"] and manifest["batch_run_id"] == report["batch_run_id"]
