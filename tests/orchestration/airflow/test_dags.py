"""The DAGs parse quickly, without errors, and mirror the stage registry."""

from __future__ import annotations

from itertools import pairwise

import pytest

from songrec.orchestration.registry import STAGE_NAMES


def test_dags_import_without_errors_and_parse_fast(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert {"songrec_training", "songrec_retraining", "songrec_monitoring"} <= set(dagbag.dag_ids)
    for stat in dagbag.dagbag_stats:
        seconds = stat.duration.total_seconds() if hasattr(stat.duration, "total_seconds") else stat.duration
        print(f"parse time {stat.file}: {seconds:.3f} s")
        assert seconds < 1.0, stat


@pytest.mark.parametrize("dag_id", ["songrec_training", "songrec_retraining"])
def test_one_task_per_stage_in_registry_order(dagbag, dag_id: str) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.get_dag(dag_id)
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    for upstream, downstream in pairwise(STAGE_NAMES):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    for name in STAGE_NAMES:
        task = dag.get_task(name)
        assert task.pool == "songrec_dvc"
        assert task.retries >= 1


def test_retraining_branches_before_the_stages(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.get_dag("songrec_retraining")
    assert dag.get_task("detect_new_data").downstream_task_ids == {"nothing_to_do", "merge_new_data"}
    assert dag.get_task("merge_new_data").downstream_task_ids == {STAGE_NAMES[0]}
    assert dag.get_task(STAGE_NAMES[-1]).downstream_task_ids == {"reload_api"}
    assert set(dag.params) >= {"min_growth_share", "force", "reason"}
    assert dag.params["min_growth_share"] == 0.01
