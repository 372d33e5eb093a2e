"""The catalog as arrays (CatalogIndex) and the ranking signals of its tracks for one playlist.

Built once per catalog, so scoring a playlist is a few vector operations: shared artist,
shared album, co-membership in visible playlists, subgenre affinity, audio similarity, release
year and popularity (SIGNALS).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from songrec.models.recommender.base import Playlist
from songrec.models.recommender.sparse_ops import (
    code_counts,
    membership_matrices,
    row_entries,
    spread,
    unit_rows,
)

SIGNALS = (
    "artist_share",
    "album_share",
    "co_playlist",
    "artist_subgenre_affinity",
    "audio_cosine",
    "popularity",
    "popularity_proximity",
    "year_proximity",
    "year_density",
    "same_artist",
    "same_album",
    "shares_playlist",
)


# Signals computed from playlist memberships. Their weights are held non-negative: they are
# zero for a track in no visible playlist, and in an offline evaluation the tracks in no
# visible playlist are mostly the hidden ones, so a negative weight would learn to reward
# absence from playlists, which no real catalog rewards.
MEMBERSHIP_SIGNALS = frozenset({"co_playlist", "shares_playlist", "artist_subgenre_affinity"})


@dataclass
class CatalogIndex:
    """The catalog as arrays, built once, so scoring one playlist is a few vector operations."""

    track_ids: pd.Index
    artists: pd.Index
    artist_codes: np.ndarray  # -1 where the artist is unknown
    album_codes: np.ndarray
    n_albums: int
    feature_names: tuple[str, ...]
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    unit_features: np.ndarray  # standardized, then scaled to unit length (float32)
    popularity: np.ndarray  # in [0, 1]
    year: np.ndarray
    playlists: sparse.csr_matrix = field(repr=False)  # tracks x playlists, visible memberships
    # Subgenre profiles from visible memberships (rows sum to 1; zero for none): per track, and
    # per artist with one extra zero row for the unknown artist (-1).
    track_subgenres: np.ndarray = field(repr=False)
    artist_subgenres: np.ndarray = field(repr=False)

    @classmethod
    def build(
        cls, catalog: pd.DataFrame, memberships: pd.DataFrame, feature_names: Sequence[str]
    ) -> CatalogIndex:
        track_ids = pd.Index(catalog["track_id"])
        artist_codes, artists = pd.factorize(catalog["track_artist"], use_na_sentinel=True)
        album_codes, albums = pd.factorize(catalog["track_album_id"], use_na_sentinel=True)
        values = catalog[list(feature_names)].to_numpy(dtype=np.float64)
        mean = values.mean(axis=0)
        scale = values.std(axis=0)
        scale[scale == 0] = 1.0
        matrices = membership_matrices(track_ids, artist_codes, len(artists), memberships)
        return cls(
            track_ids=track_ids,
            artists=pd.Index(artists),
            artist_codes=artist_codes.astype(np.int64),
            album_codes=album_codes.astype(np.int64),
            n_albums=len(albums),
            feature_names=tuple(feature_names),
            feature_mean=mean,
            feature_scale=scale,
            # Column-major: one playlist's audio similarity is a product with a short vector,
            # which runs faster over columns than over rows.
            unit_features=np.asfortranarray(unit_rows((values - mean) / scale), dtype=np.float32),
            popularity=(catalog["popularity"].to_numpy(dtype=np.float32) / 100.0),
            year=catalog["year"].to_numpy(dtype=np.float32),
            **matrices,
        )

    def __len__(self) -> int:
        return len(self.track_ids)

    def standardize(self, values: np.ndarray) -> np.ndarray:
        """Feature rows of tracks outside the catalog, scaled like the catalog's unit features."""
        return unit_rows((np.asarray(values, dtype=np.float64) - self.feature_mean) / self.feature_scale)

    def with_playlists(self, memberships: pd.DataFrame) -> CatalogIndex:
        """The same catalog with another set of visible memberships."""
        matrices = membership_matrices(self.track_ids, self.artist_codes, len(self.artists), memberships)
        kept = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return CatalogIndex(**{**kept, **matrices})

    def signals(self, playlist: Playlist) -> np.ndarray:
        """The ranking signals of every catalog track for one playlist: (n_tracks, len(SIGNALS))."""
        return np.column_stack(self._signal_columns(playlist))

    def seeds(self, playlist: Playlist) -> Seeds:
        """What the signals need to know of the playlist: small arrays, none catalog-sized."""
        n_seeds = max(playlist.size, 1)
        seeds = playlist.positions
        seed_artists = np.concatenate([self.artist_codes[seeds], self._extra_artist_codes(playlist)])
        seed_artists = seed_artists[seed_artists >= 0]
        album_codes = self.album_codes[seeds]
        seed_playlists = None
        if self.playlists.shape[1] and len(seeds):
            # The seeds' rows summed; scipy's row indexing would take a third of a request.
            playlist_codes, counts = row_entries(self.playlists, seeds)
            seed_playlists = np.bincount(playlist_codes, counts, minlength=self.playlists.shape[1])
        # The playlist's subgenre profile, from its tracks' playlists and its artists' playlists.
        profile = self.track_subgenres[seeds].sum(axis=0) + self.artist_subgenres[seed_artists].sum(axis=0)
        profile = profile / max(float(profile.sum()), 1e-9)
        seed_vectors = [self.unit_features[seeds]]
        years = [self.year[seeds]]
        if playlist.extra_features is not None and len(playlist.extra_features):
            seed_vectors.append(self.standardize(playlist.extra_features).astype(np.float32))
            if playlist.extra_years is not None:
                years.append(playlist.extra_years.astype(np.float32))
        stacked = np.concatenate(seed_vectors)
        centroid = None
        if len(stacked):
            centroid = stacked.mean(axis=0)
            centroid /= max(float(np.linalg.norm(centroid)), 1e-9)
        seed_popularity = self.popularity[seeds]
        return Seeds(
            n_seeds=n_seeds,
            artist_counts=code_counts(seed_artists, len(self.artists)),
            albums=np.unique(album_codes[album_codes >= 0], return_counts=True),
            seed_playlists=seed_playlists,
            # Per artist first, then per track: the same products, without gathering an
            # (n_tracks x n_subgenres) matrix on every request (most of a request's time on a
            # large catalog).
            artist_affinity=self.artist_subgenres @ profile,
            centroid=centroid,
            years=np.concatenate(years),
            mean_popularity=float(seed_popularity.sum()) / len(seed_popularity)
            if len(seed_popularity)
            else None,
        )

    def signals_at(self, playlist: Playlist, positions: np.ndarray, seen: Seeds | None = None) -> np.ndarray:
        """`signals(playlist)[positions]`, computed for those tracks only (`seen`: the playlist's
        `_seeds`, when the caller has them)."""
        return np.column_stack(self._signal_columns(playlist, positions, seen))

    def _signal_columns(
        self, playlist: Playlist, at: np.ndarray | None = None, seen: Seeds | None = None
    ) -> list[np.ndarray]:
        """The signal columns for every catalog track, or for the tracks at positions `at`."""
        seen = self.seeds(playlist) if seen is None else seen

        def take(values: np.ndarray) -> np.ndarray:
            return values if at is None else values[at]

        artist_codes, year, popularity = take(self.artist_codes), take(self.year), take(self.popularity)
        artist_share = seen.artist_counts[artist_codes] / seen.n_seeds
        album_counts = np.zeros(self.n_albums + 1, dtype=np.float32)  # the last stays 0 for -1
        album_counts[seen.albums[0]] = seen.albums[1]
        album_share = album_counts[take(self.album_codes)] / seen.n_seeds
        zeros: np.ndarray = np.zeros(len(artist_codes), dtype=np.float32)
        co_playlist = zeros
        if seen.seed_playlists is not None and at is None:
            co_playlist = (self.playlists @ seen.seed_playlists) / seen.n_seeds
        elif (
            seen.seed_playlists is not None and at is not None
        ):  # those rows only: faster than scipy's indexing
            columns, values = row_entries(self.playlists, at)
            owners = np.repeat(np.arange(len(at)), np.diff(self.playlists.indptr)[at])
            shared = np.bincount(owners, values * seen.seed_playlists[columns], minlength=len(at))
            co_playlist = shared / seen.n_seeds
        audio_cosine = zeros if seen.centroid is None else take(self.unit_features) @ seen.centroid
        year_proximity, year_density = zeros, zeros
        if len(seen.years):
            year_proximity = -np.abs(year - seen.median_year) / 10.0
            year_density = self._year_density(seen.years, year)
        popularity_proximity = zeros
        if seen.mean_popularity is not None:
            popularity_proximity = -np.abs(popularity - seen.mean_popularity)
        return [
            artist_share,
            album_share,
            co_playlist,
            seen.artist_affinity[artist_codes],
            audio_cosine,
            popularity,
            popularity_proximity,
            year_proximity,
            year_density,
            (artist_share > 0).astype(np.float32),
            (album_share > 0).astype(np.float32),
            (co_playlist > 0).astype(np.float32),
        ]

    def weighted_score(
        self, playlist: Playlist, weights: np.ndarray, seen: Seeds | None = None
    ) -> np.ndarray:
        """`signals(playlist) @ weights`, fused for serving: the signals that depend on a track
        only through its artist, album, year or popularity are weighted per distinct value and
        gathered once, so no per-signal column of the catalog is ever built."""
        w = dict(zip(SIGNALS, weights.astype(np.float64), strict=True))
        seen = self.seeds(playlist) if seen is None else seen
        artist_counts = seen.artist_counts / seen.n_seeds
        per_artist = (
            w["artist_share"] * artist_counts
            + w["same_artist"] * (artist_counts > 0)
            + w["artist_subgenre_affinity"] * seen.artist_affinity
        )
        values = self.distinct_values
        per_year = np.zeros(len(values.years))
        if len(seen.years):
            per_year = w["year_proximity"] * -np.abs(values.years - seen.median_year) / 10.0 + w[
                "year_density"
            ] * self._year_density(seen.years, values.years)
        per_popularity = w["popularity"] * values.popularity
        if seen.mean_popularity is not None:
            per_popularity = per_popularity - w["popularity_proximity"] * np.abs(
                values.popularity - seen.mean_popularity
            )
        total = np.take(per_artist.astype(np.float32), self.artist_codes)
        per_year_and_popularity = per_year[values.pair_year] + per_popularity[values.pair_popularity]
        total += np.take(per_year_and_popularity.astype(np.float32), values.pair_of_track)
        # Only the tracks of the seeds' albums have album signals: visit those.
        seed_albums, album_counts = seen.albums
        if len(seed_albums):
            album_share = album_counts / seen.n_seeds
            per_album = (w["album_share"] * album_share + w["same_album"]).astype(np.float32)
            tracks, per_track = spread(self.album_tracks, seed_albums, per_album)
            total[tracks] += per_track
        if seen.centroid is not None:
            total += self.unit_features @ (w["audio_cosine"] * seen.centroid).astype(np.float32)
        if seen.seed_playlists is not None:
            # Only the tracks of the seeds' playlists have a co-playlist signal: visit those.
            in_seed_playlists = np.flatnonzero(seen.seed_playlists)
            tracks, counts = spread(
                self.playlist_tracks, in_seed_playlists, seen.seed_playlists[in_seed_playlists]
            )
            np.add.at(total, tracks, (w["co_playlist"] / seen.n_seeds * counts).astype(np.float32))
            if w["shares_playlist"]:
                total[np.unique(tracks)] += np.float32(w["shares_playlist"])
        return total

    # Derived from the fields on first use, not stored as fields: an index from with_playlists
    # derives its own (playlist_tracks follows the memberships), and the bundle file does not
    # carry them. CatalogView calls prepare() while loading a model, so no request waits.
    def prepare(self) -> None:
        """Derive what scoring needs now rather than in the first request."""
        _ = self.playlist_tracks, self.album_tracks, self.distinct_values, self.memberships_per_track

    @functools.cached_property
    def album_tracks(self) -> sparse.csr_matrix:
        """Albums x tracks, for the tracks of given albums."""
        known = np.flatnonzero(self.album_codes >= 0)
        ones = np.ones(len(known), dtype=np.float32)
        return sparse.csr_matrix((ones, (self.album_codes[known], known)), shape=(self.n_albums, len(self)))

    @functools.cached_property
    def playlist_tracks(self) -> sparse.csr_matrix:
        """`playlists` transposed, for the tracks of given playlists."""
        return sparse.csr_matrix(self.playlists.T)

    @functools.cached_property
    def memberships_per_track(self) -> np.ndarray:
        """How many visible playlists hold each track."""
        return np.asarray(self.playlists.sum(axis=1), dtype=np.float64).ravel()

    @functools.cached_property
    def distinct_values(self) -> DistinctValues:
        years, year_of_track = np.unique(self.year, return_inverse=True)
        popularity, popularity_of_track = np.unique(self.popularity, return_inverse=True)
        pairs, pair_of_track = np.unique(
            year_of_track.astype(np.int64) * len(popularity) + popularity_of_track, return_inverse=True
        )
        return DistinctValues(
            years, popularity, pairs // len(popularity), pairs % len(popularity), pair_of_track
        )

    def _year_density(self, seed_years: np.ndarray, at: np.ndarray) -> np.ndarray:
        """At each year of `at` (catalog years), the share of the playlist released within about
        two years of it."""
        years = self.distinct_values.years  # sorted
        low = int(min(years[0], seed_years.min()))
        high = int(max(years[-1], seed_years.max()))
        counts = np.bincount((seed_years - low).astype(np.int64), minlength=high - low + 1).astype(np.float32)
        kernel = np.array([0.25, 0.5, 1.0, 0.5, 0.25], dtype=np.float32)
        smooth = np.convolve(counts, kernel, mode="same") / len(seed_years)
        return smooth[(at - low).astype(np.int64)]

    def _extra_artist_codes(self, playlist: Playlist) -> np.ndarray:
        names = [name for name in playlist.extra_artists if name]
        if not names:
            return np.empty(0, np.int64)
        codes = self.artists.get_indexer(names)
        return codes[codes >= 0].astype(np.int64)


@dataclass(frozen=True)
class Seeds:
    n_seeds: int
    artist_counts: np.ndarray  # per artist code, plus a last 0 for -1 (unknown)
    albums: tuple[np.ndarray, np.ndarray]  # the seeds' distinct album codes, and their counts
    seed_playlists: np.ndarray | None  # per playlist, how many seeds it holds
    artist_affinity: np.ndarray  # per artist code, plus -1
    centroid: np.ndarray | None
    years: np.ndarray
    mean_popularity: float | None

    @functools.cached_property  # once per request: np.median costs as much as a signal
    def median_year(self) -> float:
        return float(np.median(self.years))


@dataclass(frozen=True)
class DistinctValues:
    """The catalog's distinct years, popularities and (year, popularity) pairs, and which pair
    each track has: one look-up per track for both."""

    years: np.ndarray
    popularity: np.ndarray
    pair_year: np.ndarray  # per pair, its index in years
    pair_popularity: np.ndarray  # per pair, its index in popularity
    pair_of_track: np.ndarray
