"""The loop, end to end on real data (sampled): train on tracks up to 2018 -> serve -> simulate
2019 traffic -> drift is detected -> the retraining DAG takes in the 2019 tracks -> a new champion
is promoted -> the API swaps to it -> the online hit rate on 2019 traffic rises."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

from songrec.config.manager import ConfigurationManager
from songrec.contract.features import release_year
from songrec.monitoring.simulate import Simulator, new_release_playlists
from tests.conftest import BIN, SOURCE, edit_yaml, free_port, run_cli
from tests.orchestration.airflow.conftest import dvc_project, fresh_dagbag, task_states
from tests.services import process_group, wait_http

pytestmark = pytest.mark.slow
TOKEN = "loop-test-token"
LABELER_TOKEN = "loop-labeler-token"


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Playlists with enough 2019 tracks: their tracks up to 2018 train, their 2019 tracks listen."""
    tracks = pd.read_csv(SOURCE)
    year = release_year(tracks["track_album_release_date"])
    recent = tracks[year >= 2019].drop_duplicates(["playlist_id", "track_id"])
    counts = recent.groupby("playlist_id").size()
    chosen = counts[counts >= 12].sort_index().index[:45]
    mine = tracks[tracks["playlist_id"].isin(chosen)]
    old = mine[release_year(mine["track_album_release_date"]) <= 2018].reset_index(drop=True)
    return old, mine.reset_index(drop=True)


def simulate(api: str, listening: pd.DataFrame, audio: tuple[str, ...], integers: frozenset[str]) -> dict:
    playlists = new_release_playlists(listening, 2019, seed=5)
    report = Simulator(
        api,
        playlists,
        audio,
        integers,
        rate=50,
        max_requests=120,
        max_seconds=120,
        k=50,
        label_delay=0.2,
        seed=5,
        labeler_token=LABELER_TOKEN,
    ).run()
    return report.summary()


def test_the_loop_closes(airflow_db: None, tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    old, listening = data
    project = dvc_project(tmp_path / "project", old)
    edit_yaml(project / "config" / "config.yaml", {"serve.reload_interval_seconds": 2})
    run_cli("dvc", "repro", cwd=project)
    manager = ConfigurationManager(project)
    audio, integers = manager.schema.audio_features, manager.evaluate().integer_features
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    env = {"SONGREC_ADMIN_TOKEN": TOKEN, "SONGREC_LABELER_TOKEN": LABELER_TOKEN, "SONGREC_ROOT": str(project)}
    log = tmp_path / "api.log"
    with process_group(
        [str(BIN / "songrec"), "serve", "--port", str(port)], log, env=env, cwd=project
    ) as server:
        wait_http(f"{api}/ready", server, log, timeout=120)
        assert requests.get(f"{api}/ready", timeout=10).json()["model_version"] == "1"

        before = simulate(api, listening, audio, integers)
        assert before["server_errors"] == 0 and before["labels"] > 0
        hit_rate_before = before["hit_rate_by_version"]["1"]

        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SONGREC_ROOT", str(project))
            patch.setenv("SONGREC_API_URL", api)
            patch.setenv("SONGREC_ADMIN_TOKEN", TOKEN)
            watched = fresh_dagbag().get_dag("songrec_monitoring").test()
            states = task_states(watched)
            assert states["trigger_retraining"] == "success", states
            summary = watched.get_task_instance("monitor").xcom_pull(task_ids="monitor")
            assert summary["dataset_drift"] is True
            assert "year" in summary["drifted_features"]
            reason = watched.get_task_instance("decide").xcom_pull(task_ids="decide", key="reason")
            exported = watched.get_task_instance("export_labels").xcom_pull(task_ids="export_labels")
            assert exported["exported"] == before["labels"]

            retrained = (
                fresh_dagbag()
                .get_dag("songrec_retraining")
                .test(run_conf={"force": True, "reason": f"monitoring: {reason}"})
            )
            states = task_states(retrained)
            assert str(retrained.state) == "success", states
        plan = retrained.get_task_instance("detect_new_data").xcom_pull(
            task_ids="detect_new_data", key="plan"
        )
        assert plan["new_rows"] > 0
        released = retrained.get_task_instance("release").xcom_pull(task_ids="release")
        assert released["promoted"] is True and released["challenger_version"] == "2", released
        reload = retrained.get_task_instance("reload_api").xcom_pull(task_ids="reload_api")
        assert reload["ok"] is True
        deadline = time.monotonic() + 30
        while requests.get(f"{api}/ready", timeout=10).json()["model_version"] != "2":
            assert time.monotonic() < deadline, "the API did not swap to the new champion"
            time.sleep(0.5)

        after = simulate(api, listening, audio, integers)
        assert after["server_errors"] == 0
        hit_rate_after = after["hit_rate_by_version"]["2"]
    print(json.dumps({"hit_rate_before": hit_rate_before, "hit_rate_after": hit_rate_after}))
    assert hit_rate_after > hit_rate_before
