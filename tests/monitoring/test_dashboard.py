"""The Grafana dashboard's SQL runs against a real PostgreSQL store filled by the monitor."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from songrec.config.manager import ConfigurationManager
from songrec.monitoring.monitor import record_decision, run_monitor
from songrec.store.engine import connect
from songrec.tracking.history import record_move
from tests.conftest import ROOT
from tests.monitoring.conftest import add_labels, log_traffic, utc_now

DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "songrec.json"


def dashboard_queries() -> dict[str, str]:
    board = json.loads(DASHBOARD.read_text())
    queries = {panel["title"]: panel["targets"][0]["rawSql"] for panel in board["panels"]}
    queries["annotations"] = board["annotations"]["list"][0]["target"]["rawSql"]
    return queries


def without_macros(sql: str) -> str:
    """Grafana's macros, expanded as Grafana does for a 7-day range."""
    sql = re.sub(
        r"\$__timeFilter\(([^()]*(?:\([^()]*\))?[^()]*)\)",
        r"\1 BETWEEN now() - interval '7 days' AND now() + interval '1 day'",
        sql,
    )
    return re.sub(r"\$__timeGroupAlias\((\w+), 1h\)", r"date_trunc('hour', \1) AS time", sql)


def test_every_panel_uses_the_provisioned_datasource() -> None:
    board = json.loads(DASHBOARD.read_text())
    provisioned = (ROOT / "monitoring/grafana/provisioning/datasources/songrec-events.yaml").read_text()
    assert "uid: songrec-events" in provisioned
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "songrec-events", panel["title"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.slow
def test_every_dashboard_query_runs_and_returns_rows(
    postgres_url: str,
    trained_project: Path,
    bundle,
    sample_frame: pd.DataFrame,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    config = replace(
        ConfigurationManager(trained_project).monitor(),
        event_store_url=postgres_url,
        reports_dir=tmp_path / "reports",
        min_feedback=10,
    )
    now = utc_now()
    log_traffic(
        postgres_url, bundle, 120, now, shift={"year": 7.0, "energy": -0.3, "loudness": -8.0}, hit_every=1000
    )
    # Labelled new tracks feed the genre-accuracy panel.
    add_labels(postgres_url, sample_frame.head(20), now - timedelta(minutes=5))
    run_monitor(replace(config, drift_share=0.2, min_hit_rate=0.05), bundle, "1", now=now)
    record_move(
        postgres_url, "songrec", "promote", None, "1", "no champion yet", metrics_to={"recall_at_100": 0.3}
    )
    record_decision(config, {"drift_run_id": 1, "hit_rate": 0.0, "dataset_drift": True}, True, "test")
    engine = connect(postgres_url)
    with engine.connect() as connection:
        for title, sql in dashboard_queries().items():
            rows = connection.execute(text(without_macros(sql))).fetchall()
            assert rows, f"panel {title!r} returned no rows"
    engine.dispose()
