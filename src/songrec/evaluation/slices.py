"""Honest slices of the offline metrics: where the headline numbers hide a weakness.

- Genre and popularity on test tracks whose artist the training split has seen, and on those
  whose artist it has not (cold start: a new artist's first tracks).
- Playlist continuation on the hidden tracks that item co-occurrence can reach (they share a
  visible playlist with one of the playlist's tracks) and on the rest, for songrec and for plain
  co-occurrence, so a weak use of co-listening shows.
- How varied the lists are: distinct artists in the top 10, the share of the catalog that
  appears in any top 100 (coverage), and novelty (mean self-information of the top 10); and
  what each diversity setting (max_per_artist) would cost in recall, for the trade-off plot.

Pure functions of a bundle and DataFrames, like metrics.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from songrec.evaluation.bootstrap import Evidence, interval
from songrec.evaluation.metrics import PlaylistRanking, rank_playlists
from songrec.models.recommender.base import Playlist, Recommender
from songrec.models.recommender.baselines import CooccurrenceRecommender
from songrec.models.recommender.diversity import PAGE, artist_codes, candidates_for, spread_artists

# The diversity settings the trade-off is measured at (PAGE: no cap).
DIVERSITY_SETTINGS = (1, 2, 3, 4, 5, PAGE)


def artist_slices(evidence: Evidence, catalog: pd.DataFrame, seed: int) -> dict[str, dict[str, Any]]:
    """Genre macro-F1 and popularity R², with 95% bootstrap intervals, on the test tracks of seen
    and of unseen artists. `evidence`: the bundle's predictions on the test tracks, in catalog
    order (BundleResults.evidence)."""
    known = set(catalog.loc[catalog["split"] == "train", "track_artist"].dropna())
    test = catalog[catalog["split"] == "test"]
    seen = test["track_artist"].isin(known).to_numpy()
    slices: dict[str, dict[str, Any]] = {}
    for name, mask in (("seen_artist", seen), ("unseen_artist", ~seen)):
        part = replace(
            evidence,
            genre_truth=evidence.genre_truth[mask],
            genre_predicted=evidence.genre_predicted[mask],
            popularity_truth=evidence.popularity_truth[mask],
            popularity_predicted=evidence.popularity_predicted[mask],
        )
        slices[name] = {"test_tracks": int(mask.sum())}
        for metric in ("genre_macro_f1", "popularity_r2"):
            found = interval(part, metric, seed=seed) if mask.sum() > 1 else None
            slices[name][metric] = found.point if found else None
            slices[name][f"{metric}_ci95"] = {"low": found.low, "high": found.high} if found else None
    return slices


@dataclass(frozen=True)
class RankedPlaylist:
    seeds: np.ndarray
    targets: np.ndarray  # hidden tracks the catalog holds
    reachable: np.ndarray  # per target: does it share a visible playlist with a seed?
    ranked: np.ndarray  # the top k, best first


def with_reach(
    rankings: Sequence[PlaylistRanking], cooccurrence: CooccurrenceRecommender
) -> list[RankedPlaylist]:
    """The rankings of the playlists whose hidden tracks the catalog holds, each hidden track
    marked reachable or not by co-occurrence with the playlist's visible tracks."""
    return [
        RankedPlaylist(
            entry.seeds,
            entry.targets,
            cooccurrence.counts(Playlist(positions=entry.seeds))[entry.targets] > 0,
            entry.ranked,
        )
        for entry in rankings
        if len(entry.targets)
    ]


def recall_by_reach(lists: Sequence[RankedPlaylist], k: int) -> dict[str, dict[str, Any]]:
    """Recall@k over the hidden tracks co-occurrence can reach, and over the rest (each averaged
    over the playlists that have such tracks)."""
    slices = {}
    for name, want in (("reachable", True), ("unreachable", False)):
        recalls = []
        hidden = 0
        for entry in lists:
            chosen = entry.targets[entry.reachable == want]
            if len(chosen):
                recalls.append(float(np.isin(chosen, entry.ranked[:k]).mean()))
                hidden += len(chosen)
        slices[name] = {
            "playlists": len(recalls),
            "hidden_tracks": hidden,
            f"recall_at_{k}": float(np.mean(recalls)) if recalls else None,
        }
    return slices


def diversity(
    lists: Sequence[RankedPlaylist] | Sequence[PlaylistRanking], catalog: pd.DataFrame, top: int = 10
) -> dict[str, float]:
    """Distinct artists in the top `top` (mean), catalog coverage of the top 100 (all lists
    together), and novelty: mean -log2 of each top track's share of visible playlists."""
    artists = pd.factorize(catalog["track_artist"].fillna(""))[0]
    memberships = catalog["n_playlists"].to_numpy(dtype=np.float64)
    information = -np.log2((memberships + 1.0) / (memberships.sum() + len(catalog)))
    distinct = [len(set(artists[entry.ranked[:top]].tolist())) for entry in lists]
    covered: np.ndarray = (
        np.unique(np.concatenate([entry.ranked[:100] for entry in lists]))
        if lists
        else np.array([], dtype=int)
    )
    return {
        f"distinct_artists_at_{top}": float(np.mean(distinct)) if distinct else 0.0,
        "coverage_at_100": len(covered) / len(catalog),
        f"novelty_at_{top}": float(np.mean([information[entry.ranked[:top]].mean() for entry in lists])),
    }


def diversity_tradeoff(
    recommender: Recommender,
    track_index: pd.Index,
    eval_playlists: pd.DataFrame,
    catalog: pd.DataFrame,
    k: int,
) -> dict[str, dict[str, float]]:
    """For each of DIVERSITY_SETTINGS: Recall@k, NDCG@10 and the diversity figures of the lists
    spread with that cap. Each playlist is scored once; its best tracks are spread per setting."""
    codes = artist_codes(catalog["track_artist"])
    discounts = 1.0 / np.log2(np.arange(2, PAGE + 2))
    depth = candidates_for(recommender, k, 1)
    unspread = [r for r in rank_playlists(recommender, track_index, eval_playlists, depth) if len(r.targets)]
    table = {}
    for cap in DIVERSITY_SETTINGS:
        lists = [
            replace(
                entry, ranked=entry.ranked[spread_artists(entry.ranked, codes[entry.ranked], cap, limit=k)]
            )
            for entry in unspread
        ]
        recalls = [float(np.isin(entry.targets, entry.ranked).mean()) for entry in lists]
        ndcgs = [
            float(np.isin(entry.ranked[:PAGE], entry.targets) @ discounts[: len(entry.ranked[:PAGE])])
            / discounts[: min(len(entry.targets), PAGE)].sum()
            for entry in lists
        ]
        table[str(cap)] = {
            f"recall_at_{k}": float(np.mean(recalls)) if recalls else 0.0,
            f"ndcg_at_{PAGE}": float(np.mean(ndcgs)) if ndcgs else 0.0,
            **diversity(lists, catalog),
        }
    return table
