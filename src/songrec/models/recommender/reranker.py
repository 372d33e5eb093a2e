"""The re-ranker: the linear ranker's best candidates, and the tracks plain co-occurrence ranks
first, ordered again by a logistic regression over their signals, their co-listening and the
pairwise products of those, monotone in the features that must never count against a track."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from songrec.models.recommender.base import Playlist, top_k
from songrec.models.recommender.colisten import (
    COLISTEN_FEATURES,
    co_listening,
    colisten_features,
    most_co_listened,
)
from songrec.models.recommender.index import SIGNALS, CatalogIndex, Seeds
from songrec.models.recommender.solver import fit_bounded_logistic

# What the re-ranker knows of a candidate besides its signals: the linear ranker's score, and
# the playlist's size and artist variety (a playlist of one artist wants that artist; a
# playlist of fifty wants what the fifty have in common).
RERANK_EXTRAS = ("linear_score", "playlist_size", "artist_variety")

# The re-ranker's features, in the order candidate_features gives them.
RERANK_FEATURES = (*SIGNALS, *RERANK_EXTRAS, *COLISTEN_FEATURES)

# The re-ranker's score never falls as one of these rises: more of the seeds' artist, album or
# playlists, more co-listening with them, or a better linear score, never counts against a track.
MONOTONE_FEATURES = frozenset(
    {
        "artist_share",
        "album_share",
        "co_playlist",
        "linear_score",
        *COLISTEN_FEATURES,
    }
)


def candidate_features(
    index: CatalogIndex,
    playlist: Playlist,
    linear: np.ndarray,
    n_candidates: int,
    seen: Seeds | None = None,
    n_co_listened: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The `n_candidates` tracks the linear ranker scores best and the `n_co_listened` that plain
    co-occurrence ranks first (never the playlist's own), in catalog order, and their re-ranking
    features (RERANK_FEATURES)."""
    seen = index.seeds(playlist) if seen is None else seen  # once, for the signals and co-listening
    co = co_listening(index, playlist, seen)
    top = np.union1d(
        top_k(linear, n_candidates, exclude=playlist.positions),
        most_co_listened(co, index.popularity, n_co_listened),
    )
    n = len(top)
    if n == 0:
        return top, np.empty((0, len(RERANK_FEATURES)), np.float32)
    artists = index.artist_codes[playlist.positions]
    variety = len(np.unique(artists)) / len(artists) if len(artists) else 1.0
    extras = np.column_stack([linear[top], np.full(n, playlist.size), np.full(n, variety)])
    columns = [index.signals_at(playlist, top, seen), extras, colisten_features(co, index, top)]
    return top, np.hstack(columns).astype(np.float32)


@dataclass(frozen=True)
class PairwiseReranker:
    """A logistic regression over the candidate features and their pairwise products
    (multiplied_pairs), monotone in MONOTONE_FEATURES.

    The linear ranker weighs each signal the same in every playlist; products let a signal's
    weight depend on another (artist share on the playlist's artist variety, year density on
    popularity...). Features are scaled to [0, 1] over their training range (clipped there in
    use), so a product's weight held >= 0 keeps the score non-decreasing in both its features:
    every term holding a MONOTONE_FEATURES feature has such a weight.
    """

    low: np.ndarray
    span: np.ndarray
    left: np.ndarray  # the pairs (left[i], right[i]) multiplied, i <= j
    right: np.ndarray
    weights: np.ndarray  # over [features, products]
    intercept: float

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, c: float) -> PairwiseReranker:
        low, high = features.min(axis=0), features.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        names = RERANK_FEATURES[: features.shape[1]]  # all of them, unless fitted as an older model
        left, right = multiplied_pairs(names)
        expanded = _expand((features - low) / span, left, right).astype(np.float32)
        monotone = np.array([name in MONOTONE_FEATURES for name in names])
        non_negative = np.concatenate([monotone, monotone[left] | monotone[right]])
        weights, intercept = fit_bounded_logistic(expanded, labels, c, non_negative)
        return cls(low, span, left, right, weights, intercept)

    def probability(self, features: np.ndarray, offset: np.ndarray | float = 0.0) -> np.ndarray:
        """The fitted chance of each candidate, its log-odds moved by `offset` (a prior)."""
        scaled = np.clip((features.astype(np.float64) - self.low) / self.span, 0.0, 1.0)
        d = scaled.shape[1]
        # The products' terms as a quadratic form, sum_ij x_i W_ij x_j: the same sum without
        # building the (n, d(d+1)/2) product matrix on every request.
        products = np.einsum("ij,ij->i", scaled @ self.product_weights, scaled)
        return 1.0 / (1.0 + np.exp(-(scaled @ self.weights[:d] + products + self.intercept + offset)))

    @functools.cached_property
    def product_weights(self) -> np.ndarray:
        """The products' weights as an upper-triangular (d, d) matrix."""
        d = len(self.low)
        matrix = np.zeros((d, d))
        matrix[self.left, self.right] = self.weights[d:]
        return matrix


def multiplied_pairs(names: tuple[str, ...] = RERANK_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """The feature pairs (i <= j) the re-ranker multiplies: every pair of SIGNALS and
    RERANK_EXTRAS, and each co-listening feature with RERANK_EXTRAS only. The co-listening
    features are functions of one count and follow co_playlist, so their products with the
    signals would add many columns (most of the fit's time) and little information."""
    left, right = np.triu_indices(len(names))
    colisten = np.array([name in COLISTEN_FEATURES for name in names])
    extra = np.array([name in RERANK_EXTRAS for name in names])
    plain = ~(colisten[left] | colisten[right])
    with_extra = (colisten[left] & extra[right]) | (extra[left] & colisten[right])
    return left[plain | with_extra], right[plain | with_extra]


def _expand(scaled: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.hstack([scaled, scaled[:, left] * scaled[:, right]])
