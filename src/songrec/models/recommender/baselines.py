"""The simple baselines every evaluation reports beside songrec: most popular, random and plain
item co-occurrence."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

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


class CooccurrenceRecommender:
    """Plain item co-occurrence: for each track, how often it shares a visible playlist with the
    playlist's tracks (summed over them); ties go to the more popular track.

    The one-line collaborative baseline: songrec's co-playlist signals should do at least this
    well on the tracks co-occurrence can reach at all.
    """

    def __init__(self, track_ids: pd.Index, memberships: pd.DataFrame, popularity: np.ndarray) -> None:
        rows = track_ids.get_indexer(memberships["track_id"])
        keep = rows >= 0
        playlists, _ = pd.factorize(memberships["playlist_id"].to_numpy()[keep])
        ones = np.ones(int(keep.sum()), dtype=np.float32)
        self.tracks = sparse.csr_matrix(
            (ones, (rows[keep], playlists)), shape=(len(track_ids), int(playlists.max(initial=-1)) + 1)
        )
        popularity = np.asarray(popularity, dtype=np.float64)
        self.tie_break = (popularity / (popularity.max(initial=0.0) + 1.0) * 1e-3).astype(np.float32)

    def counts(self, playlist: Playlist) -> np.ndarray:
        """Per catalog track: visible playlists it shares with the playlist's tracks (summed)."""
        if len(playlist.positions) == 0:
            return np.zeros(self.tracks.shape[0], dtype=np.float32)
        shared = np.asarray(self.tracks[playlist.positions].sum(axis=0), dtype=np.float32).ravel()
        return np.asarray(self.tracks @ shared, dtype=np.float32).ravel()

    def score(self, playlist: Playlist) -> np.ndarray:
        return self.counts(playlist) + self.tie_break
