"""songrec_tuning: parses, on demand and paused; under dag.test() it tunes a sampled project."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.orchestration.airflow.conftest import fresh_dagbag, task_states


def test_the_tuning_dag_parses_on_demand_and_paused(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert "dags/songrec_tuning.py" not in {Path(f).name for f in dagbag.import_errors}
    dag = dagbag.get_dag("songrec_tuning")
    assert dag.schedule is None or str(dag.timetable.summary) in ("None", "")
    assert dag.is_paused_upon_creation is True
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert set(dag.task_ids) == {"tune"}
    assert dag.get_task("tune").retries == 0
    assert set(dag.params) == {"model", "trials", "minutes"}
    assert dag.params["model"] == "genre"


def test_a_triggered_run_tunes_and_leaves_params_yaml_alone(
    airflow_db: None, trained_project: Path, tmp_path: Path
) -> None:
    project = shutil.copytree(trained_project, tmp_path / "project")
    before = (project / "params.yaml").read_text()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SONGREC_ROOT", str(project))
        run = (
            fresh_dagbag()
            .get_dag("songrec_tuning")
            .test(run_conf={"model": "popularity", "trials": 2, "minutes": None})
        )
    states = task_states(run)
    assert str(run.state) == "success", states
    report = run.get_task_instance("tune").xcom_pull(task_ids="tune")
    assert report["model"] == "popularity"
    assert report["trials"] == 2
    assert report["validation"]["best"] >= report["validation"]["current"]
    assert report["dvc_command"].startswith("dvc exp run -S train.popularity.")
    assert (project / "reports" / "tuning" / "popularity.yaml").exists()
    assert (project / "params.yaml").read_text() == before
