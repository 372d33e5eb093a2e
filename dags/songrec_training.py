"""songrec_training: the pipeline, one task per registry stage, each run through DVC.

Trigger it from the UI (or the REST API); the form opens ready to submit. A run registers a
candidate version; with `release` on, it then releases it if the promotion gate passes (as
songrec_retraining does), else the champion stays. With params overrides in the form, the run
is an experiment: the whole pipeline runs in a scratch copy of the project with those params
(orchestration/experiments.py), and the workspace's params.yaml and outputs stay as they are,
so the next scheduled run uses the committed params. The evaluate (or experiment) task's XCom
carries the MLflow run id and the gate's verdict.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from songrec.orchestration.airflow_tasks import DAG_DEFAULTS, release_task, stage_tasks
from songrec.orchestration.dvc_runner import DVC_POOL
from songrec.orchestration.registry import STAGE_NAMES


@dag(
    dag_id="songrec_training",
    schedule=None,
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "release": Param(
            False,
            type="boolean",
            title="Release",
            description="Release the new candidate if the promotion gate passes; off: register it only.",
        ),
        "recommender": Param(
            None,
            type=["null", "string"],
            enum=[None, "hybrid", "reference"],
            title="train.recommender.name",
            description="Recommender for this run; empty keeps params.yaml.",
        ),
        "genre_max_iter": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="train.genre.max_iter",
            description="Boosting iterations of the genre classifier; empty keeps params.yaml.",
        ),
        "popularity_max_iter": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="train.popularity.max_iter",
            description="Boosting iterations of the popularity regressor; empty keeps params.yaml.",
        ),
        "params_overrides": Param(
            {},
            type="object",
            title="Other params.yaml keys",
            description='Dotted keys and values, e.g. {"train.recommender.regularization_c": 0.5}.',
        ),
    },
)
def songrec_training() -> None:
    @task(retries=0)  # a bad override fails the same way every time
    def plan(params: dict | None = None) -> dict:
        """The run's params overrides, checked against params.yaml's rules (which stays as it is):
        {key: [committed, this run's]}, {} when there are none."""
        from songrec.orchestration.dvc_runner import project_root
        from songrec.orchestration.overrides import apply_params_overrides

        params = params or {}
        overrides = dict(params.get("params_overrides") or {})
        typed = {
            "train.recommender.name": params.get("recommender") or None,
            "train.genre.max_iter": params.get("genre_max_iter"),
            "train.popularity.max_iter": params.get("popularity_max_iter"),
        }
        overrides.update({key: value for key, value in typed.items() if value is not None})
        return apply_params_overrides(overrides, project_root(), write=False)

    @task.branch
    def route(**context) -> str:
        changes = context["ti"].xcom_pull(task_ids="plan")
        return "experiment" if changes else STAGE_NAMES[0]

    @task(task_id="experiment", pool=DVC_POOL, retries=0)
    def experiment(**context) -> dict:
        """The pipeline with this run's params, beside the workspace (never in it)."""
        from songrec.orchestration.dvc_runner import project_root
        from songrec.orchestration.experiments import run_experiment

        changes = context["ti"].xcom_pull(task_ids="plan")
        overrides = {key: new for key, (_, new) in changes.items()}
        return run_experiment(project_root(), overrides, name=f"airflow-{context['run_id']}")

    first, last = stage_tasks()
    trial = experiment()
    plan() >> route() >> [trial, first]
    [last, trial] >> release_task(only_if_param="release")


songrec_training()
