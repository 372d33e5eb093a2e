"""songrec_monitoring: watch the served traffic; retrain when the data drifts or quality drops.

Hourly: exports newly labelled tracks to the incoming folder (where retraining finds them),
runs the monitor over the window (drift against the training reference with Evidently, online
hit rate, similarity, genre accuracy; alerts), then decides. When data drift is detected (and
`use_drift` is on) or the hit rate is below `min_hit_rate`, it triggers songrec_retraining with
the reason (forced, so the labelled tracks are taken in); the decision and its reason are
recorded in the monitoring store either way.
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, task

from songrec.orchestration.airflow_tasks import DAG_DEFAULTS


@dag(
    dag_id="songrec_monitoring",
    schedule="@hourly",
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "use_drift": Param(True, type="boolean", description="Retrain on data drift."),
        "drift_share": Param(
            0.5,
            type="number",
            minimum=0,
            maximum=1,
            description="Dataset drift when at least this share of features drifted.",
        ),
        "min_hit_rate": Param(
            0.02,
            type="number",
            minimum=0,
            maximum=1,
            description="Retrain when the hit rate falls below this.",
        ),
        "window_hours": Param(
            24, type="number", exclusiveMinimum=0, description="Hours of traffic to check."
        ),
    },
)
def songrec_monitoring() -> None:
    @task
    def export_labels(**context) -> dict:
        from songrec.config.manager import ConfigurationManager
        from songrec.monitoring.monitor import export_labels as export
        from songrec.orchestration.dvc_runner import project_root

        stamp = window_end(context).strftime("%Y%m%dT%H%M%SZ")
        return export(ConfigurationManager(project_root()).monitor(), stamp)

    @task
    def monitor(params: dict | None = None, **context) -> dict:
        from dataclasses import replace

        from songrec.config.manager import ConfigurationManager
        from songrec.monitoring.monitor import run_monitor, serving_model
        from songrec.orchestration.dvc_runner import project_root

        params = params or {}
        manager = ConfigurationManager(project_root())
        config = replace(manager.monitor(), window_hours=float(params["window_hours"]))
        bundle, version = serving_model(manager)
        result = run_monitor(
            config,
            bundle,
            version,
            now=window_end(context),
            drift_share=float(params["drift_share"]),
            min_hit_rate=float(params["min_hit_rate"]),
        )
        return result.summary()

    @task.branch
    def decide(params: dict | None = None, **context) -> str:
        from songrec.config.manager import ConfigurationManager
        from songrec.monitoring.monitor import record_decision, retraining_decision
        from songrec.orchestration.dvc_runner import project_root

        params = params or {}
        config = ConfigurationManager(project_root()).monitor()
        summary = context["ti"].xcom_pull(task_ids="monitor")
        triggered, reason = retraining_decision(
            summary, bool(params["use_drift"]), float(params["min_hit_rate"]), config.min_feedback
        )
        record_decision(config, summary, triggered, reason)
        print(f"retraining {'triggered' if triggered else 'not triggered'}: {reason}")
        context["ti"].xcom_push(key="reason", value=reason)
        return "trigger_retraining" if triggered else "no_retraining"

    trigger = TriggerDagRunOperator(
        task_id="trigger_retraining",
        trigger_dag_id="songrec_retraining",
        conf={"reason": "monitoring: {{ ti.xcom_pull(task_ids='decide', key='reason') }}", "force": True},
        wait_for_completion=False,
    )
    export_labels() >> monitor() >> decide() >> [trigger, EmptyOperator(task_id="no_retraining")]


def window_end(context: dict):  # type: ignore[no-untyped-def]
    """When the run was due: the end of its hour when scheduled, the trigger time when manual.

    Fixed per run, so a rerun looks at the same window.
    """
    return context["dag_run"].run_after


songrec_monitoring()
