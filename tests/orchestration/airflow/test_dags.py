"""The DAGs parse without errors, stay light to parse, and mirror the stage registry."""

from __future__ import annotations

import os
import subprocess
import sys
from itertools import pairwise

import pytest

from songrec.orchestration.registry import STAGE_NAMES
from tests.conftest import ROOT


def test_dags_import_without_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert {"songrec_training", "songrec_retraining", "songrec_monitoring"} <= set(dagbag.dag_ids)
    for stat in dagbag.dagbag_stats:  # for the log; bench/pipeline.py measures what matters
        seconds = stat.duration.total_seconds() if hasattr(stat.duration, "total_seconds") else stat.duration
        print(f"parse time {stat.file}: {seconds:.3f} s")


HEAVY = ("pandas", "numpy", "sklearn", "scipy", "mlflow", "pyarrow", "dvc")


@pytest.mark.parametrize("dag_file", sorted(path.name for path in (ROOT / "dags").glob("*.py")))
def test_parsing_a_dag_file_loads_no_heavy_library(dag_file: str) -> None:
    """The scheduler parses DAG files again and again: they import the heavy work inside tasks."""
    probe = (
        f"import runpy, sys; runpy.run_path({str(ROOT / 'dags' / dag_file)!r}); "
        f"print('LOADED:' + ','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = [line for line in result.stdout.splitlines() if line.startswith("LOADED:")]
    assert loaded == ["LOADED:"], f"{dag_file} loads {loaded}"


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
    assert dag.get_task(STAGE_NAMES[-1]).downstream_task_ids == {"release"}
    assert dag.get_task("release").downstream_task_ids == {"reload_api"}
    assert set(dag.params) >= {"min_growth_share", "force", "reason"}
    assert dag.params["min_growth_share"] == 0.01
