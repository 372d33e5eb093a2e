"""Co-listening: which tracks share a visible playlist with a playlist's tracks, and how strongly.

Most tracks are in one visible playlist, so the linear ranker's co-playlist signal is a small
term beside artist and audio signals, and many tracks that plain co-occurrence ranks first never
reach the re-ranker. CoListening gives the re-ranker those tracks as candidates
(`most_co_listened`) and tells it how they co-occur (COLISTEN_FEATURES): how much, and relative
to how common the track and the seeds are. Everything comes from one count per track, spread
from the seeds' playlist counts the linear ranker has already made (index.Seeds): figures per
seed (with how many seeds, the most with one) cost a request more numpy steps than their
validation gain was worth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from songrec.models.recommender.base import Playlist
from songrec.models.recommender.index import CatalogIndex, Seeds
from songrec.models.recommender.sparse_ops import spread

COLISTEN_FEATURES = (
    "co_count_log",  # log1p of the visible playlists shared with the seeds, summed over seeds
    "co_cosine",  # that count over sqrt(the track's playlists x the seeds' playlists)
    "co_per_playlist",  # that count over the track's own playlists: how much of it is co-listened
)


@dataclass(frozen=True)
class CoListening:
    """The tracks sharing a visible playlist with a seed (never a seed), ascending, with their
    co-occurrence counts, and the seeds' memberships in all."""

    tracks: np.ndarray
    counts: np.ndarray  # shared (seed, playlist) memberships, summed over seeds
    seed_memberships: float

    def at(self, positions: np.ndarray) -> np.ndarray:
        """Where each of `positions` (ascending) is in `tracks`, -1 where it shares nothing."""
        where = np.searchsorted(self.tracks, positions)
        found = where < len(self.tracks)
        found[found] = self.tracks[where[found]] == positions[found]
        return np.where(found, where, -1)


def co_listening(index: CatalogIndex, playlist: Playlist, seen: Seeds | None = None) -> CoListening:
    """The co-occurrence counts with the playlist's tracks (the seeds), from the visible
    playlists: each seed playlist is visited once, weighted by how many seeds it holds (`seen`:
    the seeds' figures, when the caller has them)."""
    seeds = playlist.positions
    seed_playlists = (index.seeds(playlist) if seen is None else seen).seed_playlists
    if seed_playlists is None or len(seeds) == 0:
        return CoListening(np.empty(0, np.int64), np.empty(0), 0.0)
    distinct = np.flatnonzero(seed_playlists)
    tracks, weights = spread(index.playlist_tracks, distinct, seed_playlists[distinct])
    reached, counts = track_sums(tracks, weights, len(index))
    kept = ~np.isin(reached, seeds)
    return CoListening(reached[kept], counts[kept], float(seed_playlists.sum()))


# Below this many entries per catalog track, sorting the entries costs less than a count per
# catalog track (an array of the catalog's size, then a scan of it for the tracks reached).
SORT_BELOW = 1 / 64


def track_sums(tracks: np.ndarray, weights: np.ndarray, n_tracks: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct tracks of the entries, ascending, and each one's summed weights (in entry
    order, so both ways give the same sums to the last bit)."""
    if len(tracks) < SORT_BELOW * n_tracks:
        reached, owner = np.unique(tracks, return_inverse=True)
        return reached, np.bincount(owner, weights, minlength=len(reached))
    counts = np.bincount(tracks, weights, minlength=n_tracks)
    reached = np.flatnonzero(counts)
    return reached, counts[reached]


def most_co_listened(co: CoListening, popularity: np.ndarray, n: int) -> np.ndarray:
    """The n tracks plain item co-occurrence ranks first: most shared, then most popular (as its
    baseline breaks ties), then the lower position, so the choice is the same on every CPU."""
    if n <= 0 or len(co.tracks) == 0:
        return np.empty(0, np.int64)
    order = np.lexsort((co.tracks, -popularity[co.tracks], -co.counts))
    return co.tracks[order[:n]]


def colisten_features(co: CoListening, index: CatalogIndex, positions: np.ndarray) -> np.ndarray:
    """COLISTEN_FEATURES of the tracks at `positions` (ascending): zero for a track that shares
    no visible playlist with the seeds."""
    features = np.zeros((len(positions), len(COLISTEN_FEATURES)))
    where = co.at(positions)
    hit = where >= 0
    if not hit.any():
        return features
    counts, track_memberships = co.counts[where[hit]], index.memberships_per_track[positions[hit]]
    features[hit] = np.column_stack(
        [
            np.log1p(counts),
            counts / np.sqrt(np.maximum(track_memberships * co.seed_memberships, 1.0)),
            counts / np.maximum(track_memberships, 1.0),
        ]
    )
    return features
