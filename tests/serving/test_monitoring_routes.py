"""The API's monitoring routes: POST /labels, and the /monitoring page in headless Chromium."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from songrec.config.manager import ConfigurationManager
from songrec.config.stage_configs import ServeConfig
from songrec.models.bundle import SongrecBundle
from songrec.monitoring.monitor import export_labels, run_monitor
from songrec.serving.app import create_app
from songrec.store.engine import connect
from songrec.store.label_review import decide, held_labels
from songrec.store.queries import read_labels, read_table
from songrec.store.schema import label_batches, labels
from tests.monitoring.conftest import log_traffic, utc_now
from tests.serving.conftest import LABELER, MemorySource, running_server


def label_rows(frame: pd.DataFrame, n: int) -> list[dict]:
    return [
        {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for _, row in frame.head(n).iterrows()
    ]


def test_labels_are_checked_against_the_data_contract_and_stored(
    client: TestClient, serve_config: ServeConfig, sample_frame: pd.DataFrame
) -> None:
    rows = label_rows(sample_frame, 5)
    answer = client.post("/labels", headers=LABELER, json={"tracks": rows})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 5
    engine = connect(serve_config.event_store_url)
    stored = read_table(engine, labels)
    assert stored["track_id"].tolist() == [row["track_id"] for row in rows]
    assert stored["genre"].tolist() == [row["playlist_genre"] for row in rows]
    batches = read_table(engine, label_batches)  # who sent them, from where
    assert batches["batch_id"].astype(str).tolist() == [answer.json()["batch_id"]]
    assert batches["source_address"].tolist() == ["testclient"] and batches["rows"].tolist() == [5]


def test_labels_need_the_labeler_token_and_are_closed_without_one(
    client: TestClient, serve_config: ServeConfig, sample_frame: pd.DataFrame, bundle: SongrecBundle
) -> None:
    rows = label_rows(sample_frame, 2)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer test-admin-token"}):
        assert client.post("/labels", headers=headers, json={"tracks": rows}).status_code == 401
    assert read_table(connect(serve_config.event_store_url), labels).empty
    closed = create_app(
        replace(serve_config, labeler_token=None), model_source=MemorySource({"1": bundle}, "1")
    )
    with TestClient(closed) as other:
        answer = other.post("/labels", headers=LABELER, json={"tracks": rows})
    assert answer.status_code == 401 and "without SONGREC_LABELER_TOKEN" in answer.json()["message"]


def test_one_address_sends_at_most_its_hourly_rows(
    serve_config: ServeConfig, sample_frame: pd.DataFrame, bundle: SongrecBundle
) -> None:
    app = create_app(
        replace(serve_config, label_rows_per_hour=5), model_source=MemorySource({"1": bundle}, "1")
    )
    with TestClient(app) as client:
        assert (
            client.post("/labels", headers=LABELER, json={"tracks": label_rows(sample_frame, 4)}).status_code
            == 200
        )
        refused = client.post("/labels", headers=LABELER, json={"tracks": label_rows(sample_frame, 2)})
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "3600"
    assert "label_rows_per_hour" in refused.json()["message"]
    assert len(read_table(connect(serve_config.event_store_url), labels)) == 4


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"tempo": 10**400}, "tempo", "too large"),
        ({"loudness": "inf"}, "loudness", "finite"),
        ({"track_album_release_date": "2019-13-45"}, "track_album_release_date", "real date"),
        ({"track_album_release_date": "2019-02-30"}, "track_album_release_date", "real date"),
    ],
)
def test_numbers_and_dates_the_store_cannot_hold_are_a_422_not_a_500(
    client: TestClient, sample_frame: pd.DataFrame, change: dict, field: str, words: str
) -> None:
    row = {**label_rows(sample_frame, 1)[0], **change}
    answer = client.post("/labels", headers=LABELER, json={"tracks": [row]})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][-1] == field and words in answer.json()["message"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"danceability": 3.0}, "danceability", "outside [0, 1]"),
        ({"playlist_genre": "polka"}, "playlist_genre", "allowed set"),
        ({"colour": "blue"}, "colour", "unknown field"),
        ({"tempo": [1, 2]}, "tempo", "must be a text or a number"),
    ],
)
def test_a_bad_label_row_is_a_422_naming_the_field(
    client: TestClient, sample_frame: pd.DataFrame, change: dict, field: str, words: str
) -> None:
    row = {**label_rows(sample_frame, 1)[0], **change}
    answer = client.post("/labels", headers=LABELER, json={"tracks": [row]})
    assert answer.status_code == 422
    assert field in answer.json()["message"] and words in answer.json()["message"]


def test_labels_without_rows_or_a_column_are_refused(client: TestClient, sample_frame: pd.DataFrame) -> None:
    assert client.post("/labels", headers=LABELER, json={"tracks": []}).status_code == 422
    row = label_rows(sample_frame, 1)[0]
    del row["energy"]
    answer = client.post("/labels", headers=LABELER, json={"tracks": [row]})
    assert answer.status_code == 422 and "energy" in answer.json()["message"]


@pytest.mark.slow
def test_the_monitoring_page_shows_drift_quality_and_promotions(
    browser,
    app: FastAPI,
    serve_config: ServeConfig,
    bundle: SongrecBundle,
    trained_project: Path,
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    from songrec.tracking.history import record_move

    config = replace(
        ConfigurationManager(trained_project).monitor(),
        event_store_url=serve_config.event_store_url,
        reports_dir=tmp_path / "reports",
    )
    now = utc_now()
    log_traffic(
        serve_config.event_store_url,
        bundle,
        150,
        now,
        shift={"year": 7.0, "energy": -0.3, "loudness": -8.0, "tempo": 30.0},
    )
    run_monitor(replace(config, drift_share=0.2), bundle, "1", now=now)
    record_move(serve_config.event_store_url, "songrec", "promote", None, "1", "no champion yet")
    with running_server(app) as url:
        browser.get(f"{url}/monitoring")
        assert browser.title == "songrec monitoring"
        assert "DRIFT" in browser.find_element(By.ID, "drift-verdict").text
        for chart in ("drift_share", "feature_drift", "quality"):
            image = browser.find_element(By.ID, f"chart-{chart}")
            width = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image)
            assert width and width > 300, chart
        text = browser.find_element(By.TAG_NAME, "body").text
        assert "promote" in text and "no champion yet" in text
        browser.save_screenshot(str(tmp_path / "monitoring.png"))


def test_labels_that_contradict_what_is_known_are_held_until_reviewed(
    client: TestClient,
    serve_config: ServeConfig,
    bundle: SongrecBundle,
    sample_frame: pd.DataFrame,
    trained_project: Path,
    tmp_path: Path,
) -> None:
    catalog = bundle.catalog.set_index("track_id")["genre"]
    known = label_rows(sample_frame[sample_frame["track_id"] == catalog.index[0]], 1)[0]
    other_genre = next(g for g in ("edm", "rock") if g != catalog.iloc[0])
    new = {**known, "track_id": "0" * 22, "playlist_genre": "latin"}  # a track the catalog lacks

    def post(*rows: dict) -> dict:
        answer = client.post("/labels", headers=LABELER, json={"tracks": list(rows)})
        assert answer.status_code == 200, answer.text
        return answer.json()

    # Agreeing with the catalog, and a new track: nothing held.
    assert post({**known, "playlist_genre": catalog.iloc[0]}, new)["held"] == 0
    # Another genre for a catalog track, then for the new track's first label: both held.
    assert post({**known, "playlist_genre": other_genre}, {**new, "playlist_genre": "rap"})["held"] == 2
    engine = connect(serve_config.event_store_url)
    held = held_labels(engine)
    assert held["reason"].tolist() == [
        f"the catalog says {catalog.iloc[0]!r} for this track",
        "label 2 says 'latin' for this track",
    ]
    assert "2 held" in client.get("/monitoring").text

    # Held labels are neither exported nor scored until accepted; rejected ones never are.
    monitor = replace(
        ConfigurationManager(trained_project).monitor(),
        incoming=str(tmp_path / "incoming"),
        event_store_url=serve_config.event_store_url,
    )
    assert export_labels(monitor, "first")["exported"] == 2
    first, _ = (int(i) for i in held["id"])
    assert decide(engine, "accepted", [first]) == 1 and decide(engine, "rejected", None) == 1
    assert export_labels(monitor, "second")["exported"] == 1
    assert read_labels(engine)["id"].tolist() == [1, 2, first]  # the rejected one is out
    assert held_labels(engine).empty
