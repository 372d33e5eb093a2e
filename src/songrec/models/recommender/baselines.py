"""The simple baselines every evaluation reports beside songrec: most popular, and random."""

from __future__ import annotations

import numpy as np

from songrec.models.recommender.base import Playlist


class MostPopularRecommender:
    """Recommends the most popular tracks, whatever the playlist."""

    def __init__(self, popularity: np.ndarray) -> None:
        self.popularity = np.asarray(popularity, dtype=np.float32)

    def score(self, playlist: Playlist) -> np.ndarray:
        return self.popularity.copy()


class RandomRecommender:
    """Random scores, seeded by the playlist's tracks so that a rerun gives the same ranking."""

    def __init__(self, n_tracks: int, seed: int) -> None:
        self.n_tracks = n_tracks
        self.seed = seed

    def score(self, playlist: Playlist) -> np.ndarray:
        key = int(np.sum(playlist.positions, dtype=np.int64)) if len(playlist.positions) else 0
        return np.random.default_rng([self.seed, key]).random(self.n_tracks).astype(np.float32)
