"""songrec_batch_scoring: every known playlist's recommendations, precomputed with the champion.

Runs daily and after every release (songrec_retraining, or songrec_training with `release`
on, update the `songrec_champion` asset). It scores the catalog's playlists through
`songrec batch recommend` with the registry's champion and writes data/batch/recommend/
v<version>.parquet (and, with SONGREC_EVENT_STORE_URL on PostgreSQL, the batch_recommendations
table); the XCom says where the output went. The API's GET /playlists/{id}/recommendations
answers from it for that version. Paused at creation: unpause it to start.
"""

from __future__ import annotations

from airflow.sdk import dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from songrec.orchestration.airflow_tasks import CHAMPION_ASSET, DAG_DEFAULTS


@dag(
    dag_id="songrec_batch_scoring",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * *", timezone="UTC"), assets=[CHAMPION_ASSET]
    ),
    is_paused_upon_creation=True,
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def songrec_batch_scoring() -> None:
    @task
    def score_playlists() -> dict:
        from songrec.config.manager import ConfigurationManager
        from songrec.orchestration.batch_scoring import score_known_playlists
        from songrec.orchestration.dvc_runner import project_root

        report = score_known_playlists(ConfigurationManager(project_root()))
        print(
            f"{report['items']} playlists scored with v{report['model_version']}: {report['output']}"
            + (f" and table {report['table']}" if report["table"] else "")
        )
        return report

    score_playlists()


songrec_batch_scoring()
