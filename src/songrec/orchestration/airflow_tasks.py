"""Airflow building blocks for the DAGs in dags/: one task per registry stage, and the defaults.

The only module of the package that imports Airflow; the DAG files import it. Cheap to import
(Airflow's task SDK and the registry), so DAG files stay quick to parse.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from typing import Any

import pendulum
from airflow.sdk import Asset, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from songrec.orchestration.dvc_runner import DVC_POOL
from songrec.orchestration.registry import STAGES, Stage

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "songrec",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,  # 30 s, then 60 s (a multiplier in Airflow 3)
    "max_retry_delay": timedelta(minutes=10),
}

# What every songrec DAG shares: no backfill, one run at a time (DVC takes one call at a time).
DAG_DEFAULTS: dict[str, Any] = {
    "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
    "catchup": False,
    "max_active_runs": 1,
    "default_args": DEFAULT_ARGS,
    "tags": ["songrec"],
}


# Updated by every release task, whatever the gate decided: songrec_batch_scoring runs after it.
CHAMPION_ASSET = Asset("songrec_champion")


def stage_task(stage: Stage) -> Any:
    """The Airflow task that runs one stage through DVC and returns its summary as XCom."""

    @task(task_id=stage.name, pool=DVC_POOL, doc_md=stage.description)
    def run() -> dict[str, Any]:
        from songrec.orchestration.dvc_runner import StageFailed, run_stage

        try:
            return run_stage(stage.name)
        except StageFailed as failure:
            if not failure.retryable:  # invalid data: a retry would fail the same way
                raise AirflowFailException(str(failure)) from failure
            raise

    return run()


def stage_tasks() -> tuple[Any, Any]:
    """All stages as tasks chained in registry order; returns (first, last)."""
    tasks = [stage_task(stage) for stage in STAGES]
    for upstream, downstream in pairwise(tasks):
        upstream >> downstream
    return tasks[0], tasks[-1]


def release_task(only_if_param: str | None = None) -> Any:
    """The task that releases the candidate the run just registered, if the gate passes (the
    production path); with `only_if_param`, only when that DAG param is true (else it skips)."""

    # After the stages, or after an experiment: whichever path the run took (the other skipped).
    @task(task_id="release", retries=0, trigger_rule="none_failed_min_one_success", outlets=[CHAMPION_ASSET])
    def release(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from songrec.config.manager import ConfigurationManager
        from songrec.orchestration.dvc_runner import project_root
        from songrec.tracking.promotion import release_in_workspace

        if only_if_param is not None and not (params or {}).get(only_if_param):
            raise AirflowSkipException(f"`{only_if_param}` is off: the run registered a candidate only")
        decision = release_in_workspace(ConfigurationManager(project_root()))
        print(f"release of v{decision['challenger_version']}: {decision['promoted']} ({decision['reason']})")
        return {key: decision[key] for key in ("challenger_version", "promoted", "reason")}

    return release()
