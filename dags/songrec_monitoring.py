"""songrec_monitoring: watch the served traffic; retrain when the data drifts or quality drops.

Hourly: exports newly labelled tracks to the incoming folder (where retraining finds them),
runs the monitor over the window (drift against the training reference with Evidently, online
hit rate, similarity, genre accuracy; alerts), then decides. When data drift is detected (and
`monitor.retrain_on_drift` is on) or the hit rate is below `monitor.min_hit_rate`, it triggers
songrec_retraining with the reason (forced, so the labelled tracks are taken in); the decision
and its reason are recorded in the monitoring store either way.

The thresholds live in config/config.yaml's `monitor` section; a manual run may override them
in the trigger form (empty keeps config.yaml).
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
        "retrain_on_drift": Param(
            None, type=["null", "boolean"], description="Retrain on data drift; empty keeps config.yaml."
        ),
        "drift_share": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            description="Dataset drift from this share of drifted features; empty keeps config.yaml.",
        ),
        "min_hit_rate": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            description="Retrain when the hit rate falls below this; empty keeps config.yaml.",
        ),
        "window_hours": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            description="Hours of traffic to check; empty keeps config.yaml.",
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
        from songrec.config.manager import ConfigurationManager
        from songrec.monitoring.monitor import run_monitor, serving_model, with_overrides
        from songrec.orchestration.dvc_runner import project_root

        manager = ConfigurationManager(project_root())
        config = with_overrides(manager.monitor(), params or {})
        bundle, version = serving_model(manager)
        return run_monitor(config, bundle, version, now=window_end(context)).summary()

    @task.branch
    def decide(params: dict | None = None, **context) -> str:
        from songrec.config.manager import ConfigurationManager
        from songrec.monitoring.monitor import record_decision, retraining_decision, with_overrides
        from songrec.orchestration.dvc_runner import project_root

        config = with_overrides(ConfigurationManager(project_root()).monitor(), params or {})
        summary = context["ti"].xcom_pull(task_ids="monitor")
        triggered, reason = retraining_decision(summary, config)
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
