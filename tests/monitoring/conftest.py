"""Fixtures for monitoring: a store with a synthetic request log built from real tracks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert

from songrec.config.manager import ConfigurationManager
from songrec.core.io import load_model
from songrec.models.bundle import SongrecBundle
from songrec.store.engine import connect
from songrec.store.schema import feedback_table, labels, recommendations_table, requests_table


@pytest.fixture(scope="module")
def bundle(trained_project: Path) -> SongrecBundle:
    return load_model(ConfigurationManager(trained_project).train().bundle)


def log_traffic(
    url: str,
    bundle: SongrecBundle,
    n_requests: int,
    now: datetime,
    version: str = "1",
    shift: dict[str, float] | None = None,
    hit_every: int = 5,
    seed: int = 0,
) -> None:
    """Write `n_requests` /recommend requests in the hour before `now`, with recommendations
    and feedback: every `hit_every`-th recommended track is played, the rest skipped. `shift`
    adds to the features of the tracks sent by features (drift on purpose)."""
    rng = np.random.default_rng(seed)
    catalog = bundle.catalog
    numeric = list(bundle.numeric_features)
    requests, recommendations, feedback = [], [], []
    for index in range(n_requests):
        request_id = uuid.uuid4()
        picks = catalog.iloc[rng.choice(len(catalog), size=6, replace=False)]
        sent = picks.iloc[3:][numeric].astype(float)
        for column, delta in (shift or {}).items():
            sent[column] = sent[column] + delta
        requests.append(
            {
                "request_id": request_id,
                "time": now - timedelta(seconds=3600 * (index + 1) / (n_requests + 1)),
                "endpoint": "/recommend",
                "status": 200,
                "model_version": version,
                "input_track_ids": picks.iloc[:3]["track_id"].tolist(),
                "n_feature_tracks": 3,
                "input_tracks": sent.to_dict("records"),
                "k": 10,
                "latency_ms": 3.0,
            }
        )
        shown = catalog.iloc[rng.choice(len(catalog), size=10, replace=False)]["track_id"].tolist()
        for rank, track in enumerate(shown, 1):
            recommendations.append({"request_id": request_id, "rank": rank, "track_id": track, "score": 0.5})
            event = "play" if (index * 10 + rank) % hit_every == 0 else "skip"
            feedback.append({"request_id": request_id, "track_id": track, "event": event, "time": now})
    engine = connect(url)
    with engine.begin() as connection:
        connection.execute(insert(requests_table), requests)
        connection.execute(insert(recommendations_table), recommendations)
        connection.execute(insert(feedback_table), feedback)
    engine.dispose()


def add_labels(url: str, rows: pd.DataFrame, when: datetime) -> None:
    engine = connect(url)
    records = [
        {
            "time": when,
            "track_id": row["track_id"],
            "genre": row["playlist_genre"],
            "row": {
                k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()
            },
        }
        for _, row in rows.iterrows()
    ]
    with engine.begin() as connection:
        connection.execute(insert(labels), records)
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
