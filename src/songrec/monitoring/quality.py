"""Online quality from the request log: what the window's playlists held, what was recommended,
what listeners did with it. Pure functions of DataFrames (the store's rows) and the bundle.

- hit rate: the share of recommended tracks later played or liked, among requests that got any
  feedback, per day and model version;
- similarity: the cosine between a playlist's mean (standardized) feature vector and each track
  recommended for it, averaged per request (the reference system's monitoring chart);
- genre accuracy: the served genre classifier against the true genre of newly labelled tracks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

HIT_EVENTS = ("play", "like")


def window_tracks(requests: pd.DataFrame, catalog: pd.DataFrame, numeric: Sequence[str]) -> pd.DataFrame:
    """The numeric features of every track the window's playlists held (one row per mention).

    Catalog ids take the catalog's features; tracks sent by their features are taken as sent.
    Ids the catalog does not know (and feature rows missing a feature) are left out.
    """
    columns = list(numeric)
    by_id = catalog.set_index("track_id")[columns]
    ids = [track for listed in requests["input_track_ids"] if isinstance(listed, list) for track in listed]
    known = by_id.loc[[track for track in ids if track in by_id.index]] if ids else by_id.iloc[:0]
    sent = [row for rows in requests["input_tracks"] if isinstance(rows, list) for row in rows]
    given = pd.DataFrame(sent).reindex(columns=columns).dropna() if sent else by_id.iloc[:0]
    return pd.concat([known.reset_index(drop=True), given.astype("float64")], ignore_index=True)


def hit_rates(requests: pd.DataFrame, recommendations: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Per day and model version: requests, recommended tracks with feedback, hits, hit rate."""
    columns = ["day", "model_version", "requests", "recommended_with_feedback", "hits", "hit_rate"]
    if requests.empty:
        return pd.DataFrame(columns=columns)
    frame = requests[["request_id", "time", "model_version"]].assign(
        day=lambda f: pd.to_datetime(f["time"], utc=True).dt.date,
        model_version=lambda f: f["model_version"].fillna("unknown").astype(str),
    )
    answered = set(feedback["request_id"])
    hits = feedback[feedback["event"].isin(HIT_EVENTS)][["request_id", "track_id"]].drop_duplicates()
    shown = recommendations[recommendations["request_id"].isin(answered)][["request_id", "track_id"]]
    shown = shown.merge(hits.assign(hit=1), on=["request_id", "track_id"], how="left").fillna({"hit": 0})
    per_request = shown.groupby("request_id").agg(recommended=("track_id", "size"), hits=("hit", "sum"))
    merged = frame.merge(per_request, left_on="request_id", right_index=True, how="left").fillna(
        {"recommended": 0, "hits": 0}
    )
    grouped = merged.groupby(["day", "model_version"]).agg(
        requests=("request_id", "size"),
        recommended_with_feedback=("recommended", "sum"),
        hits=("hits", "sum"),
    )
    grouped["hit_rate"] = grouped["hits"] / grouped["recommended_with_feedback"].where(
        grouped["recommended_with_feedback"] > 0
    )
    return grouped.reset_index()[columns].astype(
        {"requests": "int64", "recommended_with_feedback": "int64", "hits": "int64"}
    )


def playlist_similarity(
    requests: pd.DataFrame,
    recommendations: pd.DataFrame,
    catalog: pd.DataFrame,
    numeric: Sequence[str],
    mean: np.ndarray,
    scale: np.ndarray,
) -> pd.DataFrame:
    """Per request: mean cosine between the playlist's mean vector and its recommended tracks.

    Vectorized over the whole window: one row per (request, track) pair, sums by request.
    """
    columns = list(numeric)
    requests = requests.reset_index(drop=True)  # positions below are row numbers
    by_id = catalog.set_index("track_id")[columns]
    standardized = (by_id.to_numpy(dtype=np.float64) - mean) / scale
    index = pd.Index(by_id.index)
    n = len(requests)
    order = pd.Series(np.arange(n), index=requests["request_id"].to_numpy())
    sums = np.zeros((n, len(columns)))
    counts = np.zeros(n)

    ids = requests["input_track_ids"].explode().dropna()
    if len(ids):
        positions = index.get_indexer(ids.to_numpy())
        owners = ids.index.to_numpy()[positions >= 0]
        np.add.at(sums, owners, standardized[positions[positions >= 0]])
        np.add.at(counts, owners, 1.0)
    sent = requests["input_tracks"].explode().dropna()
    if len(sent):
        rows = pd.DataFrame(list(sent), index=sent.index).reindex(columns=columns)
        complete = rows.notna().all(axis=1).to_numpy()
        values = (rows.to_numpy(dtype=np.float64)[complete] - mean) / scale
        owners = rows.index.to_numpy()[complete]
        np.add.at(sums, owners, values)
        np.add.at(counts, owners, 1.0)

    picks = recommendations[recommendations["request_id"].isin(order.index)]
    positions = index.get_indexer(picks["track_id"].to_numpy())
    keep = positions >= 0
    owners = order[picks["request_id"].to_numpy()[keep]].to_numpy()
    valid = counts[owners] > 0
    owners, chosen = owners[valid], standardized[positions[keep][valid]]
    centroids = sums[owners] / counts[owners][:, None]
    norms = np.linalg.norm(chosen, axis=1) * np.linalg.norm(centroids, axis=1)
    cosine = np.einsum("ij,ij->i", chosen, centroids) / np.maximum(norms, 1e-9)
    total = np.bincount(owners, weights=cosine, minlength=n)
    picked = np.bincount(owners, minlength=n)
    answered = picked > 0
    return pd.DataFrame(
        {
            "request_id": requests["request_id"].to_numpy()[answered],
            "similarity": total[answered] / picked[answered],
        }
    )


def genre_accuracy(labels: pd.DataFrame, predicted: Sequence[str]) -> pd.DataFrame:
    """Per day: labelled tracks and how many the classifier got right."""
    if labels.empty:
        return pd.DataFrame(columns=["day", "labelled_tracks", "genre_correct"])
    frame = labels.assign(
        day=pd.to_datetime(labels["time"], utc=True).dt.date,
        correct=(np.asarray(predicted) == labels["genre"].to_numpy()).astype(int),
    )
    return (
        frame.groupby("day")
        .agg(labelled_tracks=("track_id", "size"), genre_correct=("correct", "sum"))
        .reset_index()
    )


def quality_rows(
    requests: pd.DataFrame,
    hits: pd.DataFrame,
    similarity: pd.DataFrame,
    genre: pd.DataFrame,
    serving_version: str,
    computed_at: Any,
) -> list[dict[str, Any]]:
    """Rows of the online_quality table: one per day and model version."""
    rows: dict[tuple[Any, str], dict[str, Any]] = {}

    def row(day: Any, version: str) -> dict[str, Any]:
        return rows.setdefault(
            (day, version),
            {
                "day": day,
                "model_version": version,
                "computed_at": computed_at,
                "requests": 0,
                "recommended_with_feedback": 0,
                "hits": 0,
                "hit_rate": None,
                "mean_similarity": None,
                "labelled_tracks": 0,
                "genre_correct": 0,
                "genre_accuracy": None,
            },
        )

    for item in hits.itertuples(index=False):
        target = row(item.day, item.model_version)
        target.update(
            requests=int(item.requests),
            recommended_with_feedback=int(item.recommended_with_feedback),
            hits=int(item.hits),
            hit_rate=None if pd.isna(item.hit_rate) else float(item.hit_rate),
        )
    if not similarity.empty:
        joined = similarity.merge(requests[["request_id", "time", "model_version"]], on="request_id")
        joined["day"] = pd.to_datetime(joined["time"], utc=True).dt.date
        joined["model_version"] = joined["model_version"].fillna("unknown").astype(str)
        for (day, version), value in joined.groupby(["day", "model_version"])["similarity"].mean().items():
            row(day, version)["mean_similarity"] = float(value)
    for item in genre.itertuples(index=False):
        target = row(item.day, serving_version)
        target.update(
            labelled_tracks=int(item.labelled_tracks),
            genre_correct=int(item.genre_correct),
            genre_accuracy=float(item.genre_correct) / max(int(item.labelled_tracks), 1),
        )
    return list(rows.values())
