"""Offline metrics: genre classification, popularity regression, playlist continuation.

Pure functions of models and DataFrames (no files, no MLflow), so the evaluate stage, the
promotion gate (challenger and champion on the same data) and the tests share them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, mean_absolute_error, r2_score

from songrec.evaluation.bootstrap import Evidence
from songrec.models.bundle import SongrecBundle
from songrec.models.recommender.base import Playlist, Recommender, top_k
from songrec.models.recommender.diversity import served_ranking


def genre_metrics(bundle: SongrecBundle, test: pd.DataFrame) -> dict[str, Any]:
    predicted = bundle.predict_genre(test)["genre"].to_numpy()
    truth = test["genre"].astype(str).to_numpy()
    labels = list(bundle.genres)
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", labels=labels)),
        "labels": labels,
        "confusion_matrix": confusion_matrix(truth, predicted, labels=labels).tolist(),
        "truth": truth,
        "predicted": predicted,
    }


def popularity_metrics(bundle: SongrecBundle, test: pd.DataFrame) -> dict[str, Any]:
    predicted = bundle.predict_popularity(test)
    truth = test["popularity"].to_numpy(dtype=np.float64)
    return {
        "r2": float(r2_score(truth, predicted)),
        "mae": float(mean_absolute_error(truth, predicted)),
        "predicted": predicted,
        "actual": truth,
    }


@dataclass(frozen=True)
class PlaylistRanking:
    """One evaluation playlist as a recommender ranked it."""

    seeds: np.ndarray  # the visible tracks the catalog holds
    targets: np.ndarray  # the hidden tracks the catalog holds
    n_hidden: int  # all hidden tracks: those the catalog lacks count as missed
    ranked: np.ndarray  # the best k, best first, never a seed


def rank_playlists(
    recommender: Recommender, track_index: pd.Index, eval_playlists: pd.DataFrame, k: int
) -> list[PlaylistRanking]:
    """Each evaluation playlist with hidden tracks (in playlist id order), its visible tracks
    the query, scored once: every metric of the lists is computed from these."""
    rankings = []
    for _, group in eval_playlists.groupby("playlist_id", sort=True):
        hidden_mask = (group["part"] == "hidden").to_numpy()
        n_hidden = int(hidden_mask.sum())
        if n_hidden == 0:
            continue
        seeds = track_index.get_indexer(group["track_id"][~hidden_mask])
        seeds = seeds[seeds >= 0]
        targets = track_index.get_indexer(group["track_id"][hidden_mask])
        ranked = top_k(recommender.score(Playlist(positions=seeds)), k, exclude=seeds)
        rankings.append(PlaylistRanking(seeds, targets[targets >= 0], n_hidden, ranked))
    return rankings


def continuation_of(rankings: Sequence[PlaylistRanking], ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Recall@K and NDCG@K of each ranked playlist (rankings at least max(ks) deep)."""
    max_k = max(ks)
    values: dict[str, list[float]] = {f"{name}_at_{k}": [] for k in ks for name in ("recall", "ndcg")}
    discounts = 1.0 / np.log2(np.arange(2, max_k + 2))
    for entry in rankings:
        hits = np.isin(entry.ranked[:max_k], entry.targets).astype(np.float64)
        hits = np.pad(hits, (0, max_k - len(hits)))
        for k in ks:
            ideal = discounts[: min(entry.n_hidden, k)].sum()
            values[f"recall_at_{k}"].append(hits[:k].sum() / entry.n_hidden)
            values[f"ndcg_at_{k}"].append(float(hits[:k] @ discounts[:k]) / ideal)
    return {name: np.asarray(per_playlist, dtype=np.float64) for name, per_playlist in values.items()}


def continuation_per_playlist(
    recommender: Recommender, track_index: pd.Index, eval_playlists: pd.DataFrame, ks: Sequence[int]
) -> dict[str, np.ndarray]:
    """Recall@K and NDCG@K of each evaluation playlist (in playlist id order).

    Each playlist's visible tracks are the query and its hidden tracks the answer. A hidden
    track that the recommender's catalog does not hold counts as missed.
    """
    return continuation_of(rank_playlists(recommender, track_index, eval_playlists, max(ks)), ks)


def continuation_metrics(
    recommender: Recommender, track_index: pd.Index, eval_playlists: pd.DataFrame, ks: Sequence[int]
) -> dict[str, float]:
    """Mean Recall@K and NDCG@K over the evaluation playlists."""
    return mean_of(continuation_per_playlist(recommender, track_index, eval_playlists, ks))


def mean_of(per_playlist: dict[str, np.ndarray]) -> dict[str, float]:
    """The mean of each metric over the playlists, summed in playlist order (as the gate resamples)."""
    means = {}
    for name, values in per_playlist.items():
        total = 0.0
        for value in values.tolist():
            total += value
        means[name] = total / max(len(values), 1)
    return means


@dataclass(frozen=True)
class BundleResults:
    """One bundle measured on one catalog's test split and evaluation playlists."""

    genre: dict[str, Any]
    popularity: dict[str, Any]
    per_playlist: dict[str, np.ndarray]
    test_tracks: int
    rankings: tuple[PlaylistRanking, ...] = ()  # the lists the continuation metrics come from

    @property
    def continuation(self) -> dict[str, float]:
        return mean_of(self.per_playlist)

    @property
    def gated(self) -> dict[str, float]:
        """The flat metrics the promotion gate compares."""
        return {
            "genre_accuracy": self.genre["accuracy"],
            "genre_macro_f1": self.genre["macro_f1"],
            "popularity_r2": self.popularity["r2"],
            "popularity_mae": self.popularity["mae"],
            **self.continuation,
        }

    @property
    def evidence(self) -> Evidence:
        """The units the gated metrics are computed from, for the bootstrap."""
        labels = list(self.genre["labels"])
        codes = {label: code for code, label in enumerate(labels)}
        return Evidence(
            per_playlist=self.per_playlist,
            genre_truth=np.array([codes.get(str(g), -1) for g in self.genre["truth"]]),
            genre_predicted=np.array([codes[str(g)] for g in self.genre["predicted"]]),
            n_genres=len(labels),
            popularity_truth=self.popularity["actual"],
            popularity_predicted=self.popularity["predicted"],
        )


def measure_bundle(
    bundle: SongrecBundle, catalog: pd.DataFrame, eval_playlists: pd.DataFrame, ks: Sequence[int]
) -> BundleResults:
    """Every offline metric of a bundle on the given data: the evaluate stage measures the new
    bundle with it, and the promotion gate the champion, so both are measured alike. Lists are
    ranked as the API serves them by default (the bundle's diversity setting)."""
    test = catalog[catalog["split"] == "test"]
    ranking = served_ranking(
        bundle.recommender, bundle.catalog["track_artist"], bundle.max_per_artist, max(ks)
    )
    rankings = rank_playlists(ranking, bundle.track_index, eval_playlists, max(ks))
    return BundleResults(
        genre=genre_metrics(bundle, test),
        popularity=popularity_metrics(bundle, test),
        per_playlist=continuation_of(rankings, ks),
        test_tracks=len(test),
        rankings=tuple(rankings),
    )


def evaluation_digest(catalog: pd.DataFrame, eval_playlists: pd.DataFrame) -> str:
    """A short fingerprint of the evaluation data: the test tracks and the evaluation playlists."""
    test = catalog.loc[catalog["split"] == "test", ["track_id", "genre", "popularity"]]
    pairs = eval_playlists[["playlist_id", "track_id", "part"]]
    digest = hashlib.sha256()
    for frame in (test, pairs):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:12]
