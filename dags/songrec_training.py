"""songrec_training: the pipeline, one task per registry stage, each run through DVC.

Trigger it from the UI (or the REST API); the form's params override params.yaml keys for an
experiment run, the way `dvc exp run --set-param` does in the workspace. The evaluate task's
XCom and log carry the MLflow run id and the promotion decision.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from songrec.orchestration.airflow_tasks import DAG_DEFAULTS, stage_tasks


@dag(
    dag_id="songrec_training",
    schedule=None,
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "recommender": Param(
            "",
            type="string",
            enum=["", "hybrid", "reference"],
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
    def apply_params(params: dict | None = None) -> dict:
        """Write the run's overrides into params.yaml (checked first); {} when there are none."""
        from songrec.orchestration.overrides import apply_params_overrides

        params = params or {}
        overrides = dict(params.get("params_overrides") or {})
        typed = {
            "train.recommender.name": params.get("recommender") or None,
            "train.genre.max_iter": params.get("genre_max_iter"),
            "train.popularity.max_iter": params.get("popularity_max_iter"),
        }
        overrides.update({key: value for key, value in typed.items() if value is not None})
        return apply_params_overrides(overrides)

    first, _ = stage_tasks()
    apply_params() >> first


songrec_training()
