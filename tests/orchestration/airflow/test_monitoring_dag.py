"""songrec_monitoring under dag.test(): records its decision, and triggers retraining on drift."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from songrec.config.manager import ConfigurationManager
from songrec.core.io import load_model
from songrec.store.engine import connect
from songrec.store.queries import read_table
from songrec.store.schema import retraining_decisions
from tests.conftest import run_cli
from tests.monitoring.conftest import log_traffic, utc_now
from tests.orchestration.airflow.conftest import dvc_project, fresh_dagbag, task_states

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(airflow_db: None, tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame) -> Path:
    folder = dvc_project(tmp_path_factory.mktemp("af-monitor") / "project", sample_frame)
    run_cli("dvc", "repro", cwd=folder)
    return folder


def monitor_run(project: Path, **conf: object):  # type: ignore[no-untyped-def]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SONGREC_ROOT", str(project))
        return fresh_dagbag().get_dag("songrec_monitoring").test(run_conf=conf or None)


def test_quiet_traffic_records_why_nothing_was_triggered(project: Path) -> None:
    manager = ConfigurationManager(project)
    bundle = load_model(manager.train().bundle)
    log_traffic(manager.monitor().event_store_url, bundle, 120, utc_now(), hit_every=4)
    run = monitor_run(project)
    states = task_states(run)
    assert str(run.state) == "success", states
    assert states["no_retraining"] == "success" and states["trigger_retraining"] == "skipped"
    decisions = read_table(connect(manager.monitor().event_store_url), retraining_decisions)
    assert not decisions["triggered"].iloc[-1]
    assert "no dataset drift" in decisions["reason"].iloc[-1]


def test_drift_triggers_retraining_with_the_reason(project: Path) -> None:
    manager = ConfigurationManager(project)
    bundle = load_model(manager.train().bundle)
    log_traffic(
        manager.monitor().event_store_url,
        bundle,
        400,
        utc_now(),
        seed=3,
        shift={
            "year": 8.0,
            "energy": -0.4,
            "danceability": 0.3,
            "loudness": -10.0,
            "tempo": 40.0,
            "valence": -0.4,
            "acousticness": 0.5,
            "speechiness": 0.3,
            "liveness": 0.4,
        },
    )
    run = monitor_run(project, drift_share=0.2, window_hours=1)
    states = task_states(run)
    assert states["trigger_retraining"] == "success", states
    summary = run.get_task_instance("monitor").xcom_pull(task_ids="monitor")
    assert summary["dataset_drift"] is True
    reason = run.get_task_instance("decide").xcom_pull(task_ids="decide", key="reason")
    assert reason.startswith("data drift in")
    from airflow.models.dagrun import DagRun

    triggered = [
        run
        for run in DagRun.find(dag_id="songrec_retraining")
        if (run.conf or {}).get("reason") == f"monitoring: {reason}"
    ]
    assert len(triggered) == 1
    assert triggered[0].conf["force"] is True
