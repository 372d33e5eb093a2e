"""The monitor on a synthetic request log: drift, hit rate, similarity, labels, alerts, decisions."""

from __future__ import annotations

import http.server
import json
import threading
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from songrec.config.manager import ConfigurationManager
from songrec.monitoring.monitor import export_labels, retraining_decision, run_monitor, with_overrides
from songrec.store.engine import connect
from songrec.store.queries import read_table
from songrec.store.schema import alerts, drift_runs, online_quality
from tests.conftest import free_port
from tests.monitoring.conftest import add_labels, log_traffic, utc_now


@pytest.fixture
def config(trained_project: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    return replace(
        ConfigurationManager(trained_project).monitor(),
        reports_dir=tmp_path / "reports",
        incoming=str(tmp_path / "incoming"),
    )


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_steady_traffic_shows_no_drift_and_its_hit_rate(  # type: ignore[no-untyped-def]
    request, config, bundle, store: str
) -> None:
    url = request.getfixturevalue(f"{store}_url")
    now = utc_now()
    log_traffic(url, bundle, 200, now, hit_every=5)
    result = run_monitor(replace(config, event_store_url=url), bundle, "1", now=now)
    summary = result.summary()
    assert summary["requests"] == 200
    assert summary["dataset_drift"] is False
    assert summary["hit_rate"] == pytest.approx(0.2)
    assert summary["recommended_with_feedback"] == 2000
    assert -1.0 <= summary["mean_similarity"] <= 1.0
    assert result.report_path is not None and result.report_path.stat().st_size > 100_000
    html = result.report_path.read_text()
    assert "<script src=" not in html  # self-contained: opens offline
    engine = connect(url)
    runs = read_table(engine, drift_runs)
    quality = read_table(engine, online_quality, order_by="day")
    assert len(runs) == 1 and not runs["dataset_drift"].iloc[0]
    assert set(
        json.loads(runs["features"].iloc[0])
        if isinstance(runs["features"].iloc[0], str)
        else runs["features"].iloc[0]
    ) == set(bundle.numeric_features)
    assert quality["hits"].sum() == 400 and (quality["model_version"] == "1").all()


def test_shifted_features_are_drift_and_raise_an_alert_that_reaches_the_webhook(  # type: ignore[no-untyped-def]
    config, bundle, sqlite_url: str, tmp_path: Path
) -> None:
    received: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        now = utc_now()
        log_traffic(
            sqlite_url,
            bundle,
            300,
            now,
            shift={
                "year": 6.0,
                "energy": -0.3,
                "danceability": 0.25,
                "loudness": -8.0,
                "tempo": 30.0,
                "valence": -0.3,
                "acousticness": 0.4,
                "speechiness": 0.3,
            },
        )
        hook = f"http://127.0.0.1:{server.server_address[1]}/alerts"
        result = run_monitor(
            replace(config, event_store_url=sqlite_url, alert_webhook_url=hook, drift_share=0.25),
            bundle,
            "1",
            now=now,
        )
    finally:
        server.shutdown()
    assert result.drift is not None and result.drift.dataset_drift
    assert "year" in result.drift.drifted
    assert received and received[0]["kind"] == "drift"
    stored = read_table(connect(sqlite_url), alerts)
    assert stored["delivery"].tolist() == ["webhook HTTP 204"]


def test_an_unreachable_webhook_is_logged_not_fatal(config, bundle, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    now = utc_now()
    log_traffic(sqlite_url, bundle, 100, now, hit_every=1000)  # almost no hits
    hook = f"http://127.0.0.1:{free_port()}/down"
    result = run_monitor(
        replace(
            config, event_store_url=sqlite_url, alert_webhook_url=hook, min_feedback=10, min_hit_rate=0.05
        ),
        bundle,
        "1",
        now=now,
    )
    assert any("hit rate" in alert for alert in result.alerts)
    stored = read_table(connect(sqlite_url), alerts)
    assert stored["delivery"].str.startswith("webhook failed").all()


def test_labelled_new_tracks_count_for_genre_accuracy_and_go_to_incoming(  # type: ignore[no-untyped-def]
    config, bundle, sqlite_url: str, sample_frame: pd.DataFrame
) -> None:
    now = utc_now()
    log_traffic(sqlite_url, bundle, 50, now)
    add_labels(sqlite_url, sample_frame.head(40), now - pd.Timedelta(minutes=5))
    cfg = replace(config, event_store_url=sqlite_url)
    result = run_monitor(cfg, bundle, "1", now=now)
    assert result.genre_accuracy is not None and 0.0 <= result.genre_accuracy <= 1.0
    first = export_labels(cfg, "20261101T000000Z")
    assert first["exported"] == 40
    exported = pd.read_csv(first["file"])
    assert list(exported.columns) == list(sample_frame.columns)
    assert export_labels(cfg, "20261101T010000Z")["exported"] == 0  # each label goes out once


def test_retraining_decision_explains_itself(config) -> None:  # type: ignore[no-untyped-def]
    config = replace(config, min_hit_rate=0.05, min_feedback=50, retrain_on_drift=True)
    drifted = {
        "dataset_drift": True,
        "drifted_features": ["year", "energy"],
        "hit_rate": 0.2,
        "recommended_with_feedback": 500,
    }
    assert retraining_decision(drifted, config) == (True, "data drift in 2 features (year, energy)")
    assert retraining_decision(drifted, replace(config, retrain_on_drift=False))[0] is False
    low = {"dataset_drift": False, "drifted_features": [], "hit_rate": 0.01, "recommended_with_feedback": 500}
    assert retraining_decision(low, config) == (True, "online hit rate 1.00% below 5.00%")
    few = {**low, "recommended_with_feedback": 10}
    assert retraining_decision(few, config)[0] is False


def test_a_run_overrides_only_the_thresholds_it_sets(config) -> None:  # type: ignore[no-untyped-def]
    changed = with_overrides(config, {"drift_share": 0.2, "min_hit_rate": None, "window_hours": 2.0})
    assert (changed.drift_share, changed.window_hours) == (0.2, 2.0)
    assert changed.min_hit_rate == config.min_hit_rate  # None keeps config.yaml's value
    with pytest.raises(ValueError, match="use_drift"):
        with_overrides(config, {"use_drift": True})
