"""What every recommender shares: the Playlist it scores, the Recommender protocol, and the
top-k choice that turns one score per catalog track into a ranked answer.

Every recommender answers `score(playlist)` with one number per catalog track (higher is
better), so evaluation, the bundle and the API treat them alike. The playlist's own tracks are
removed by `top_k`, never by the scorers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Playlist:
    """A playlist as the scorers see it: catalog positions plus tracks known only by features.

    `extra_features` rows hold the raw numeric features (the recommender's feature_names, in
    order) of the tracks the catalog does not know; `extra_artists` their artist names where
    known (None where not) and `extra_years` their release years.
    """

    positions: np.ndarray
    extra_features: np.ndarray | None = None
    extra_artists: tuple[str | None, ...] = ()
    extra_years: np.ndarray | None = None

    @property
    def size(self) -> int:
        extra = 0 if self.extra_features is None else len(self.extra_features)
        return len(self.positions) + extra


class Recommender(Protocol):
    """One score per catalog track for a playlist; may also have `best_tracks(playlist, k)`."""

    def score(self, playlist: Playlist) -> np.ndarray: ...


def best_tracks(recommender: Recommender, playlist: Playlist, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best tracks for the playlist (never its own), best first, and the scores to show:
    the fitted chance for songrec's recommender, the raw score for the others."""
    own = getattr(recommender, "best_tracks", None)  # a recommender that knows a shorter way
    if own is not None:
        result: tuple[np.ndarray, np.ndarray] = own(playlist, k)
        return result
    scores = recommender.score(playlist)
    best = top_k(scores, k, exclude=playlist.positions)
    return best, scores[best].astype(np.float64)


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray) -> np.ndarray:
    """Positions of the k best scores, best first, never one of `exclude`.

    Equal scores go to the lower position, so the answer is the same on every machine: which of
    several equal scores argpartition keeps depends on the CPU (numpy sorts with AVX-512 where
    it can), and most-popular's integer popularities tie all the time.
    """
    negated = np.negative(scores, dtype=np.float32)  # one copy: argpartition finds the smallest
    negated[exclude] = np.inf
    k = min(k, len(negated) - len(np.unique(exclude)))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k < len(negated):
        pool = _smallest_pool(negated, k)
        values = negated[pool]
        parted = np.argpartition(values, k)
        best, next_value = parted[:k], values[parted[k]]
        if values[best].max() == next_value:  # equal scores on both sides of the cut
            best = np.concatenate(
                [np.flatnonzero(values < next_value), np.flatnonzero(values == next_value)]
            )[:k]
        best = pool[best]
    else:
        best = np.arange(len(negated))
    best = np.sort(best)
    return best[np.argsort(negated[best], kind="stable")]


def _smallest_pool(values: np.ndarray, k: int) -> np.ndarray:
    """Positions, ascending, of values that include the k + 1 smallest and every value equal to
    the largest of those: the values at or below a threshold read off a strided sample of them
    (at most about 16,000), else all.

    The threshold costs a small fraction of an argpartition over the whole catalog and leaves
    about 2(k + 1) values to partition. The sample's rank has 8 to spare, so that an unlucky
    sample (too few values below its threshold) is rare.
    """
    stride = max(8, len(values) // 16_384)
    rank = 2 * (k + 1) // stride + 8
    sample = values[::stride]
    if rank < len(sample):
        threshold = np.partition(sample, rank)[rank]
        pool = np.flatnonzero(values <= threshold)
        if len(pool) > k:  # else too few at or below it: take all
            return pool
    return np.arange(len(values))
