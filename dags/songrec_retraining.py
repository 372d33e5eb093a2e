"""songrec_retraining: take in new data when there is enough of it, retrain, gate, reload the API.

Daily (and on demand): looks for new files in the incoming folder or S3 prefix, and for a
changed source; when the new rows grow the data by more than `min_growth_share` (or the run is
forced, e.g. by songrec_monitoring), accepts them as the addition of this logical date and runs
the pipeline, releases the new candidate if the promotion gate passes (this is the production
path: a pipeline run alone only registers candidates), then asks the serving API to reload
(SONGREC_API_URL and SONGREC_ADMIN_TOKEN; a failure there is logged, not fatal).
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, dag, task

from songrec.orchestration.airflow_tasks import DAG_DEFAULTS, release_task, stage_tasks


@dag(
    dag_id="songrec_retraining",
    schedule="@daily",
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "min_growth_share": Param(
            0.01,
            type="number",
            minimum=0,
            maximum=1,
            description="Retrain when new rows grow the data by more than this share.",
        ),
        "force": Param(False, type="boolean", description="Retrain even below the threshold."),
        "reason": Param("", type="string", description="Why this run was triggered (for the log)."),
    },
)
def songrec_retraining() -> None:
    @task.branch
    def detect_new_data(params: dict | None = None, **context) -> str:
        """Decide from the incoming files and the source; branch to training or to nothing."""
        from songrec.config.manager import ConfigurationManager
        from songrec.orchestration.dvc_runner import project_root
        from songrec.orchestration.retraining import plan_retraining

        params = params or {}
        plan = plan_retraining(
            ConfigurationManager(project_root()).retrain(),
            logical_date(context),
            min_growth_share=float(params["min_growth_share"]),
            force=bool(params["force"]),
        )
        summary = plan.summary() | {"trigger_reason": params.get("reason", "")}
        print(f"retraining decision: {summary}")
        context["ti"].xcom_push(key="plan", value=summary)
        return "merge_new_data" if plan.train else "nothing_to_do"

    @task
    def merge_new_data(params: dict | None = None, **context) -> dict:
        """Write this logical date's addition (a rerun of the same date rebuilds the same one)."""
        from songrec.config.manager import ConfigurationManager
        from songrec.orchestration.dvc_runner import project_root
        from songrec.orchestration.retraining import accept, plan_retraining

        params = params or {}
        config = ConfigurationManager(project_root()).retrain()
        plan = plan_retraining(
            config, logical_date(context), float(params["min_growth_share"]), bool(params["force"])
        )
        return accept(plan, config)

    @task
    def reload_api() -> dict:
        from songrec.config.environment import Environment
        from songrec.orchestration.api_reload import request_reload

        environment = Environment.read()
        return request_reload(environment.api_url, environment.admin_token)

    first, last = stage_tasks()
    merge = merge_new_data()
    detect_new_data() >> [EmptyOperator(task_id="nothing_to_do"), merge]
    merge >> first
    last >> release_task() >> reload_api()


def logical_date(context: dict) -> str:
    """The run's logical date (a manual run without one uses the time it was queued to run)."""
    moment = context.get("logical_date") or context["dag_run"].run_after
    return moment.isoformat()


songrec_retraining()
