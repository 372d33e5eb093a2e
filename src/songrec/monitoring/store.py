"""The monitoring store: drift runs, online quality, labels, alerts, promotions, decisions.

These tables sit beside the request log (serving/events.py) on the same SQLAlchemy MetaData,
in the same database: a SQLite file by default, PostgreSQL by SONGREC_EVENT_STORE_URL. The
Grafana dashboard and the API's /monitoring page read them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url

from songrec.serving.events import feedback_table, metadata, recommendations_table, requests_table

drift_runs = Table(
    "drift_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("model_version", String(64)),
    Column("reference", String(200), nullable=False),  # what the window was compared with
    Column("n_reference", Integer, nullable=False),
    Column("n_current", Integer, nullable=False),
    Column("n_requests", Integer, nullable=False),
    Column("drift_share", Float),  # share of features that drifted
    Column("drift_threshold", Float, nullable=False),
    Column("dataset_drift", Boolean, nullable=False),
    Column("features", JSON),  # {feature: {"score", "method", "threshold", "drifted"}}
    Column("report_path", Text),
)

online_quality = Table(
    "online_quality",
    metadata,
    Column("day", Date, primary_key=True),
    Column("model_version", String(64), primary_key=True),
    Column("computed_at", DateTime(timezone=True), nullable=False),
    Column("requests", Integer, nullable=False),
    Column("recommended_with_feedback", Integer, nullable=False),
    Column("hits", Integer, nullable=False),  # recommended tracks later played or liked
    Column("hit_rate", Float),
    Column("mean_similarity", Float),  # playlist-to-recommendation cosine (the reference system's chart)
    Column("labelled_tracks", Integer, nullable=False),
    Column("genre_correct", Integer, nullable=False),
    Column("genre_accuracy", Float),
)

labels = Table(
    "labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("track_id", String(64), nullable=False, index=True),
    Column("genre", String(32), nullable=False),
    Column("row", JSON, nullable=False),  # the track as a row of the source data (config/schema.yaml)
    Column("exported_at", DateTime(timezone=True)),  # when it went to the incoming folder
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("kind", String(32), nullable=False),  # drift | quality
    Column("metric", String(64), nullable=False),
    Column("value", Float),
    Column("threshold", Float),
    Column("message", Text, nullable=False),
    Column("delivery", String(200)),  # webhook outcome, or "log only"
)

promotions = Table(
    "promotions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("model", String(200), nullable=False),
    Column("action", String(16), nullable=False),  # promote | rollback
    Column("from_version", String(64)),
    Column("to_version", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("metrics_from", JSON),
    Column("metrics_to", JSON),
    Column("run_id", String(64)),
)

retraining_decisions = Table(
    "retraining_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("drift_run_id", Integer),
    Column("triggered", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("hit_rate", Float),
    Column("dataset_drift", Boolean),
)


def connect(url: str) -> Engine:
    """An engine on the store, with every table (request log included) created if missing."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, pool_pre_ping=True)
    metadata.create_all(engine, checkfirst=True)
    return engine


def insert_row(engine: Engine, table: Table, values: Mapping[str, Any]) -> int | None:
    with engine.begin() as connection:
        result = connection.execute(insert(table).values(**values))
        keys = result.inserted_primary_key
    return int(keys[0]) if keys and isinstance(keys[0], int) else None


def replace_quality(engine: Engine, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write per-day, per-version figures, replacing earlier figures for the same day and version."""
    rows = list(rows)
    if not rows:
        return
    with engine.begin() as connection:
        for row in rows:
            connection.execute(
                delete(online_quality).where(
                    (online_quality.c.day == row["day"])
                    & (online_quality.c.model_version == row["model_version"])
                )
            )
        connection.execute(insert(online_quality), rows)


def read_window(engine: Engine, start: datetime, end: datetime, limit: int) -> dict[str, pd.DataFrame]:
    """The newest /recommend requests in [start, end) (at most `limit`), their recommendations
    and the feedback on them."""
    window = (
        select(requests_table.c.request_id)
        .where(
            (requests_table.c.endpoint == "/recommend")
            & (requests_table.c.status == 200)
            & (requests_table.c.time >= start)
            & (requests_table.c.time < end)
        )
        .order_by(requests_table.c.time.desc())
        .limit(limit)
        .subquery()
    )
    queries = {
        "requests": select(
            requests_table.c.request_id,
            requests_table.c.time,
            requests_table.c.model_version,
            requests_table.c.input_track_ids,
            requests_table.c.input_tracks,
        ).join(window, window.c.request_id == requests_table.c.request_id),
        "recommendations": select(
            recommendations_table.c.request_id,
            recommendations_table.c.rank,
            recommendations_table.c.track_id,
        ).join(window, window.c.request_id == recommendations_table.c.request_id),
        "feedback": select(
            feedback_table.c.request_id,
            feedback_table.c.track_id,
            feedback_table.c.event,
        ).join(window, window.c.request_id == feedback_table.c.request_id),
    }
    with engine.connect() as connection:
        return {name: pd.read_sql(query, connection) for name, query in queries.items()}


def read_labels(engine: Engine, since: datetime | None = None, unexported: bool = False) -> pd.DataFrame:
    query = select(labels.c.id, labels.c.time, labels.c.track_id, labels.c.genre, labels.c.row)
    if since is not None:
        query = query.where(labels.c.time >= since)
    if unexported:
        query = query.where(labels.c.exported_at.is_(None))
    with engine.connect() as connection:
        return pd.read_sql(query.order_by(labels.c.id), connection)


def mark_exported(engine: Engine, ids: Iterable[int], when: datetime) -> None:
    ids = list(ids)
    if ids:
        with engine.begin() as connection:
            connection.execute(update(labels).where(labels.c.id.in_(ids)).values(exported_at=when))


def read_table(engine: Engine, table: Table, order_by: str = "time") -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(select(table).order_by(table.c[order_by]), connection)
