"""Labels that contradict what is known, held for review (store.schema.label_reviews).

A label (a track's true row, genre included, from POST /labels) is held when its track is in
the catalog with another genre, or an earlier label that still stands (not rejected) gave the
track another genre, or an earlier row of the same batch did. Held labels are stored, counted
and shown on /monitoring, but neither exported for retraining nor used for the quality figures
until `songrec labels accept`; `songrec labels reject` keeps them out for good.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from songrec.store.schema import label_batches, label_reviews, labels

DECISIONS = ("accepted", "rejected")


def conflicts(
    connection: Connection, records: Sequence[dict[str, Any]], catalog_genre: Callable[[str], str | None]
) -> list[str | None]:
    """Per record, why it is held (None: it is not): the catalog, an earlier label, the batch."""
    track_ids = sorted({record["track_id"] for record in records})
    earlier: dict[str, dict[str, int]] = {}  # track id -> genre -> the first label saying so
    query = (
        select(labels.c.id, labels.c.track_id, labels.c.genre)
        .outerjoin(label_reviews, label_reviews.c.label_id == labels.c.id)
        .where(labels.c.track_id.in_(track_ids), standing())
        .order_by(labels.c.id)
    )
    for label_id, track_id, genre in connection.execute(query):
        earlier.setdefault(track_id, {}).setdefault(genre, label_id)
    reasons: list[str | None] = []
    in_batch: dict[str, tuple[str, int]] = {}  # track id -> (genre, its row in the batch)
    for row, record in enumerate(records):
        track_id, genre = record["track_id"], record["genre"]
        known = catalog_genre(track_id)
        others = {g: i for g, i in earlier.get(track_id, {}).items() if g != genre}
        if known is not None and known != genre:
            reasons.append(f"the catalog says {known!r} for this track")
        elif others:
            other, label_id = min(others.items(), key=lambda item: item[1])
            reasons.append(f"label {label_id} says {other!r} for this track")
        elif track_id in in_batch and in_batch[track_id][0] != genre:
            other, first = in_batch[track_id]
            reasons.append(f"row {first} of this batch says {other!r} for this track")
        else:
            reasons.append(None)
        in_batch.setdefault(track_id, (genre, row))
    return reasons


def store_labels(
    connection: Connection,
    batch: dict[str, Any],
    records: list[dict[str, Any]],
    reasons: Sequence[str | None],
) -> int:
    """Insert the batch, its labels and the reviews of those held; the number held."""
    connection.execute(label_batches.insert(), [batch])
    held = [(record, reason) for record, reason in zip(records, reasons, strict=True) if reason]
    if not held:
        connection.execute(labels.insert(), records)
        return 0
    for record, reason in zip(records, reasons, strict=True):
        label_id = connection.execute(labels.insert().values(**record).returning(labels.c.id)).scalar_one()
        if reason:
            connection.execute(label_reviews.insert().values(label_id=label_id, reason=reason))
    return len(held)


def standing() -> ColumnElement[bool]:
    """Labels that count (in an outer join with label_reviews): never held, or accepted."""
    return or_(label_reviews.c.label_id.is_(None), label_reviews.c.decision == "accepted")


def held_labels(engine: Engine) -> pd.DataFrame:
    """The labels waiting for a decision, oldest first."""
    query = (
        select(labels.c.id, labels.c.time, labels.c.track_id, labels.c.genre, label_reviews.c.reason)
        .join(label_reviews, label_reviews.c.label_id == labels.c.id)
        .where(label_reviews.c.decision.is_(None))
        .order_by(labels.c.id)
    )
    with engine.connect() as connection:
        return pd.read_sql(query, connection)


def count_held(connection: Connection) -> int:
    query = select(func.count()).select_from(label_reviews).where(label_reviews.c.decision.is_(None))
    return int(connection.execute(query).scalar_one())


def decide(engine: Engine, decision: str, label_ids: Iterable[int] | None) -> int:
    """Accept or reject held labels (all of them when `label_ids` is None); how many changed."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
    where = [label_reviews.c.decision.is_(None)]
    if label_ids is not None:
        where.append(label_reviews.c.label_id.in_(list(label_ids)))
    with engine.begin() as connection:
        result = connection.execute(
            update(label_reviews).where(and_(*where)).values(decision=decision, decided_at=datetime.now(UTC))
        )
    return int(result.rowcount)
