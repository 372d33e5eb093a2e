"""The re-ranker: the linear ranker's best candidates ordered again by a logistic regression over
their signals and the signals' pairwise products, monotone in the signals that must never count
against a track."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from songrec.models.recommender.base import Playlist, top_k
from songrec.models.recommender.index import SIGNALS, CatalogIndex, Seeds
from songrec.models.recommender.solver import fit_bounded_logistic

# What the re-ranker knows of a candidate besides its signals: the linear ranker's score, and
# the playlist's size and artist variety (a playlist of one artist wants that artist; a
# playlist of fifty wants what the fifty have in common).
RERANK_EXTRAS = ("linear_score", "playlist_size", "artist_variety")


# The re-ranker's score never falls as one of these rises: more of the seeds' artist, album or
# playlists, or a better linear score, never counts against a track.
MONOTONE_FEATURES = frozenset(
    {
        "artist_share",
        "album_share",
        "co_playlist",
        "linear_score",
    }
)


def candidate_features(
    index: CatalogIndex,
    playlist: Playlist,
    linear: np.ndarray,
    n_candidates: int,
    seen: Seeds | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The `n_candidates` tracks the linear ranker scores best (never the playlist's own), in
    catalog order, and their re-ranking features: SIGNALS, then RERANK_EXTRAS."""
    top = np.sort(top_k(linear, n_candidates, exclude=playlist.positions))
    n = len(top)
    if n == 0:
        return top, np.empty((0, len(SIGNALS) + len(RERANK_EXTRAS)), np.float32)
    artists = index.artist_codes[playlist.positions]
    variety = len(np.unique(artists)) / len(artists) if len(artists) else 1.0
    extras = np.column_stack([linear[top], np.full(n, playlist.size), np.full(n, variety)])
    return top, np.hstack([index.signals_at(playlist, top, seen), extras]).astype(np.float32)


@dataclass(frozen=True)
class PairwiseReranker:
    """A logistic regression over the candidate features and their pairwise products, monotone
    in MONOTONE_FEATURES.

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
        left, right = np.triu_indices(features.shape[1])
        expanded = _expand((features - low) / span, left, right).astype(np.float32)
        monotone = np.array([name in MONOTONE_FEATURES for name in (*SIGNALS, *RERANK_EXTRAS)])
        non_negative = np.concatenate([monotone, monotone[left] | monotone[right]])
        weights, intercept = fit_bounded_logistic(expanded, labels, c, non_negative)
        return cls(low, span, left, right, weights, intercept)

    def probability(self, features: np.ndarray) -> np.ndarray:
        scaled = np.clip((features.astype(np.float64) - self.low) / self.span, 0.0, 1.0)
        d = scaled.shape[1]
        # The products' terms as a quadratic form, sum_ij x_i W_ij x_j: the same sum without
        # building the (n, d(d+1)/2) product matrix on every request.
        products = np.einsum("ij,ij->i", scaled @ self.product_weights, scaled)
        return 1.0 / (1.0 + np.exp(-(scaled @ self.weights[:d] + products + self.intercept)))

    @functools.cached_property
    def product_weights(self) -> np.ndarray:
        """The products' weights as an upper-triangular (d, d) matrix."""
        d = len(self.low)
        matrix = np.zeros((d, d))
        matrix[self.left, self.right] = self.weights[d:]
        return matrix


def _expand(scaled: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.hstack([scaled, scaled[:, left] * scaled[:, right]])
