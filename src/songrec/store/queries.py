"""Reading and writing the event store's tables (store/schema.py): the monitoring run's window
of requests, recommendations and feedback; labels; per-day quality; any table for a page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

from songrec.store.label_review import standing
from songrec.store.schema import (
    feedback_table,
    label_reviews,
    labels,
    online_quality,
    recommendations_table,
    requests_table,
)


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
    """The labels that stand: not held for review, or accepted (store.label_review)."""
    query = (
        select(labels.c.id, labels.c.time, labels.c.track_id, labels.c.genre, labels.c.row)
        .outerjoin(label_reviews, label_reviews.c.label_id == labels.c.id)
        .where(standing())
    )
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
