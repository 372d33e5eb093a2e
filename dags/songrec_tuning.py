"""songrec_tuning: search one model's hyperparameters with Optuna, on demand (`songrec tune`).

Trigger it from the UI (or the REST API) with the model and a budget. It searches on a
validation split of the training data only (never the test split or the evaluation playlists),
logs one MLflow parent run with a child run per trial in the `<experiment>-tuning` experiment,
and writes the best values as a params.yaml patch (reports/tuning/<model>.yaml) with the
`dvc exp run -S ...` command that tries them; its XCom is the report. It never edits
params.yaml: tuned values become the defaults only through a normal experiment and release.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from songrec.orchestration.airflow_tasks import DAG_DEFAULTS


@dag(
    dag_id="songrec_tuning",
    schedule=None,
    is_paused_upon_creation=True,
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "model": Param(
            "genre",
            type="string",
            enum=["genre", "popularity", "recommender"],
            description="The model whose params.yaml section (train.<model>) is searched.",
        ),
        "trials": Param(30, type=["null", "integer"], minimum=1, description="Trials (trial 0: current)."),
        "minutes": Param(
            60,
            type=["null", "number"],
            exclusiveMinimum=0,
            description="No trial starts after this many minutes; empty: trials alone.",
        ),
    },
)
def songrec_tuning() -> None:
    @task(retries=0)  # a search is long and seeded: a retry would redo the same trials
    def tune(params: dict | None = None) -> dict:
        from songrec.config.manager import ConfigurationManager
        from songrec.orchestration.dvc_runner import project_root
        from songrec.orchestration.tuning_run import run_tuning

        params = params or {}
        report = run_tuning(
            ConfigurationManager(project_root()),
            params.get("model") or "genre",
            trials=params.get("trials"),
            minutes=params.get("minutes"),
        )
        validation = report["validation"]
        print(
            f"{report['model']}: validation {report['metric']} {validation['current']:.4f} (current)"
            f" -> {validation['best']:.4f} (best); try it: {report['dvc_command']}"
        )
        return report

    tune()


songrec_tuning()
