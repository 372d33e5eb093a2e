"""Co-listening: which tracks share a visible playlist with a playlist's tracks, and how strongly.

Most tracks are in one visible playlist, so the linear ranker's co-playlist signal is a small
term beside artist and audio signals, and many tracks that plain co-occurrence ranks first never
reach the re-ranker. CoListening gives the re-ranker those tracks as candidates
(`most_co_listened`) and tells it how they co-occur (COLISTEN_FEATURES): how much, with how many
of the seeds, and relative to how common the track and the seeds are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from songrec.models.recommender.index import CatalogIndex
from songrec.models.recommender.sparse_ops import row_entries, spread

COLISTEN_FEATURES = (
    "co_count_log",  # log1p of the visible playlists shared with the seeds, summed over seeds
    "co_cosine",  # that count over sqrt(the track's playlists x the seeds' playlists)
    "co_seed_share",  # share of the seeds that share a playlist with the track
    "co_max_seed_log",  # log1p of the most playlists the track shares with any one seed
    "co_per_playlist",  # that count over the track's own playlists: how much of it is co-listened
)


@dataclass(frozen=True)
class CoListening:
    """The tracks sharing a visible playlist with a seed (never a seed), ascending, with their
    co-occurrence counts, and the seeds' memberships the per-seed figures are read from."""

    tracks: np.ndarray
    counts: np.ndarray  # shared (seed, playlist) memberships, summed over seeds
    seed_playlists: np.ndarray  # the seeds' memberships: playlist codes, ascending...
    seed_of_membership: np.ndarray  # ...which seed (its index among the seeds)...
    membership_values: np.ndarray  # ...and the membership's value (1 unless listed twice)
    n_seeds: int

    def at(self, positions: np.ndarray) -> np.ndarray:
        """Where each of `positions` (ascending) is in `tracks`, -1 where it shares nothing."""
        where = np.searchsorted(self.tracks, positions)
        found = where < len(self.tracks)
        found[found] = self.tracks[where[found]] == positions[found]
        return np.where(found, where, -1)


def co_listening(index: CatalogIndex, seeds: np.ndarray) -> CoListening:
    """The co-occurrence counts with the seeds, from the visible playlists. Each seed playlist is
    visited once, weighted by how many seeds it holds (not once per seed): a request's cost
    follows the seeds' distinct playlists."""
    empty = np.empty(0, np.int64)
    if len(seeds) == 0 or index.playlists.shape[1] == 0:
        return CoListening(empty, np.empty(0), empty, empty, np.empty(0), len(seeds))
    playlists, values = row_entries(index.playlists, seeds)
    seed_of = np.repeat(np.arange(len(seeds)), np.diff(index.playlists.indptr)[seeds])
    order = np.argsort(playlists, kind="stable")
    distinct, first = np.unique(playlists[order], return_index=True)
    seeds_in = np.add.reduceat(values[order], first) if len(first) else np.empty(0)
    tracks, weights = spread(index.playlist_tracks, distinct, seeds_in)
    # Summed over the catalog, not sorted: a count per track costs less than sorting the entries.
    counts = np.bincount(tracks, weights, minlength=len(index))
    counts[seeds] = 0.0
    reached = np.flatnonzero(counts)
    return CoListening(reached, counts[reached], playlists[order], seed_of[order], values[order], len(seeds))


def per_seed(co: CoListening, index: CatalogIndex, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per track at `positions`: how many seeds it shares a playlist with, and the most playlists
    it shares with one seed. Read from the tracks' own memberships, so it costs what the
    candidates' co-listening holds, not what the seeds' playlists hold."""
    playlists, values = row_entries(index.playlists, positions)
    track_of = np.repeat(np.arange(len(positions)), np.diff(index.playlists.indptr)[positions])
    low = np.searchsorted(co.seed_playlists, playlists, "left")
    n_seeds_in = np.searchsorted(co.seed_playlists, playlists, "right") - low
    # Each (track, playlist) entry expanded to the seed memberships of that playlist.
    offsets = np.repeat(low - np.cumsum(n_seeds_in) + n_seeds_in, n_seeds_in) + np.arange(n_seeds_in.sum())
    pair_keys, pair_of = np.unique(
        np.repeat(track_of, n_seeds_in) * max(co.n_seeds, 1) + co.seed_of_membership[offsets],
        return_inverse=True,
    )
    pair_counts = np.bincount(pair_of, np.repeat(values, n_seeds_in) * co.membership_values[offsets])
    track_of_pair = pair_keys // max(co.n_seeds, 1)
    most = np.zeros(len(positions))
    np.maximum.at(most, track_of_pair, pair_counts)
    return np.bincount(track_of_pair, minlength=len(positions)).astype(np.float64), most


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
    seeds_sharing, most = per_seed(co, index, positions[hit])
    seed_memberships = float(co.membership_values.sum())
    features[hit] = np.column_stack(
        [
            np.log1p(counts),
            counts / np.sqrt(np.maximum(track_memberships * seed_memberships, 1.0)),
            seeds_sharing / max(co.n_seeds, 1),
            np.log1p(most),
            counts / np.maximum(track_memberships, 1.0),
        ]
    )
    return features
