"""Recommenders: a playlist in, one score per catalog track out.

Every recommender here answers `score(playlist)` with one number per catalog track (higher is
better), so evaluation, the bundle and the API treat them alike. The playlist's own tracks are
removed by `recommend`, never by the scorers.

- HybridRecommender (songrec's own): a linear ranker over signals a real catalog holds:
  shared artist, shared album, co-membership in (visible) playlists, audio similarity, release
  year and popularity, whose best candidates a PairwiseReranker orders again with the signals'
  pairwise products. Both are fitted by logistic regression on simulated continuations of the
  training playlists (hide part of each, learn to find it again).
- MostPopularRecommender and RandomRecommender: the simple baselines.
The reference system's recommender lives in models/reference.py.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import minimize

from songrec.hashing import stable_uniform

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
    def score(self, playlist: Playlist) -> np.ndarray: ...


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
        matrices = _membership_matrices(track_ids, artist_codes, len(artists), memberships)
        return cls(
            track_ids=track_ids,
            artists=pd.Index(artists),
            artist_codes=artist_codes.astype(np.int64),
            album_codes=album_codes.astype(np.int64),
            n_albums=len(albums),
            feature_names=tuple(feature_names),
            feature_mean=mean,
            feature_scale=scale,
            # Column-major: one playlist's audio similarity is a product with a 13-vector, three
            # times faster over columns than over rows of 13 values.
            unit_features=np.asfortranarray(_unit_rows((values - mean) / scale), dtype=np.float32),
            popularity=(catalog["popularity"].to_numpy(dtype=np.float32) / 100.0),
            year=catalog["year"].to_numpy(dtype=np.float32),
            **matrices,
        )

    def __len__(self) -> int:
        return len(self.track_ids)

    def standardize(self, values: np.ndarray) -> np.ndarray:
        """Feature rows of tracks outside the catalog, scaled like the catalog's unit features."""
        return _unit_rows((np.asarray(values, dtype=np.float64) - self.feature_mean) / self.feature_scale)

    def with_playlists(self, memberships: pd.DataFrame) -> CatalogIndex:
        """The same catalog with another set of visible memberships."""
        matrices = _membership_matrices(self.track_ids, self.artist_codes, len(self.artists), memberships)
        kept = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return CatalogIndex(**{**kept, **matrices})

    def signals(self, playlist: Playlist) -> np.ndarray:
        """The ranking signals of every catalog track for one playlist: (n_tracks, len(SIGNALS))."""
        return np.column_stack(self._signal_columns(playlist))

    def _seeds(self, playlist: Playlist) -> _Seeds:
        """What the signals need to know of the playlist: small arrays, none catalog-sized."""
        n_seeds = max(playlist.size, 1)
        seeds = playlist.positions
        seed_artists = np.concatenate([self.artist_codes[seeds], self._extra_artist_codes(playlist)])
        seed_artists = seed_artists[seed_artists >= 0]
        album_codes = self.album_codes[seeds]
        seed_playlists = None
        if self.playlists.shape[1] and len(seeds):
            # The seeds' rows summed; scipy's row indexing would take a third of a request.
            playlist_codes, counts = _row_entries(self.playlists, seeds)
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
        return _Seeds(
            n_seeds=n_seeds,
            artist_counts=_code_counts(seed_artists, len(self.artists)),
            albums=np.unique(album_codes[album_codes >= 0], return_counts=True),
            seed_playlists=seed_playlists,
            # Per artist first, then per track: the same products, without gathering an
            # (n_tracks x n_subgenres) matrix on every request (64 ms of 80 at 1,000,000 tracks).
            artist_affinity=self.artist_subgenres @ profile,
            centroid=centroid,
            years=np.concatenate(years),
            mean_popularity=float(seed_popularity.sum()) / len(seed_popularity)
            if len(seed_popularity)
            else None,
        )

    def signals_at(self, playlist: Playlist, positions: np.ndarray, seen: _Seeds | None = None) -> np.ndarray:
        """`signals(playlist)[positions]`, computed for those tracks only (`seen`: the playlist's
        `_seeds`, when the caller has them)."""
        return np.column_stack(self._signal_columns(playlist, positions, seen))

    def _signal_columns(
        self, playlist: Playlist, at: np.ndarray | None = None, seen: _Seeds | None = None
    ) -> list[np.ndarray]:
        """The signal columns for every catalog track, or for the tracks at positions `at`."""
        seen = self._seeds(playlist) if seen is None else seen

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
            columns, values = _row_entries(self.playlists, at)
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
        self, playlist: Playlist, weights: np.ndarray, seen: _Seeds | None = None
    ) -> np.ndarray:
        """`signals(playlist) @ weights`, fused for serving: the signals that depend on a track
        only through its artist, album, year or popularity are weighted per distinct value and
        gathered once, so no per-signal column of the catalog is ever built."""
        w = dict(zip(SIGNALS, weights.astype(np.float64), strict=True))
        seen = self._seeds(playlist) if seen is None else seen
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
            tracks, per_track = _spread(self.album_tracks, seed_albums, per_album)
            total[tracks] += per_track
        if seen.centroid is not None:
            total += self.unit_features @ (w["audio_cosine"] * seen.centroid).astype(np.float32)
        if seen.seed_playlists is not None:
            # Only the tracks of the seeds' playlists have a co-playlist signal: visit those.
            in_seed_playlists = np.flatnonzero(seen.seed_playlists)
            tracks, counts = _spread(
                self.playlist_tracks, in_seed_playlists, seen.seed_playlists[in_seed_playlists]
            )
            np.add.at(total, tracks, (w["co_playlist"] / seen.n_seeds * counts).astype(np.float32))
            if w["shares_playlist"]:
                total[np.unique(tracks)] += np.float32(w["shares_playlist"])
        return total

    # Derived once per index, on first use (CatalogView asks while loading a model, not in a
    # request); bundles pickled before these existed get them too.
    def prepare(self) -> None:
        """Derive what scoring needs now rather than in the first request."""
        _ = self.playlist_tracks, self.album_tracks, self.distinct_values

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
    def distinct_values(self) -> _DistinctValues:
        years, year_of_track = np.unique(self.year, return_inverse=True)
        popularity, popularity_of_track = np.unique(self.popularity, return_inverse=True)
        pairs, pair_of_track = np.unique(
            year_of_track.astype(np.int64) * len(popularity) + popularity_of_track, return_inverse=True
        )
        return _DistinctValues(
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
class _Seeds:
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
class _DistinctValues:
    """The catalog's distinct years, popularities and (year, popularity) pairs, and which pair
    each track has: one look-up per track for both."""

    years: np.ndarray
    popularity: np.ndarray
    pair_year: np.ndarray  # per pair, its index in years
    pair_popularity: np.ndarray  # per pair, its index in popularity
    pair_of_track: np.ndarray


def _row_entries(matrix: sparse.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The column indices and values of the given rows of a CSR matrix, concatenated."""
    if len(rows) <= 16:  # slices: fewer numpy calls, which is what a short playlist costs
        bounds = [(matrix.indptr[row], matrix.indptr[row + 1]) for row in rows.tolist()]
        if not bounds:
            return matrix.indices[:0], matrix.data[:0]
        return (
            np.concatenate([matrix.indices[start:end] for start, end in bounds]),
            np.concatenate([matrix.data[start:end] for start, end in bounds]),
        )
    starts = matrix.indptr[rows]
    lengths = matrix.indptr[rows + 1] - starts
    # For each entry, its offset in the matrix: its row's start plus its place in the row.
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    return matrix.indices[offsets], matrix.data[offsets]


def _spread(
    matrix: sparse.csr_matrix, rows: np.ndarray, row_values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`_row_entries`, each entry's value multiplied by its row's value."""
    columns, values = _row_entries(matrix, rows)
    return columns, values * np.repeat(row_values, np.diff(matrix.indptr)[rows])


def _code_counts(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """How often each code occurs, with one last slot that stays 0 for code -1 (unknown)."""
    return np.bincount(codes, minlength=n_codes + 1).astype(np.float32)


def fit_ranking_weights(examples: np.ndarray, labels: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """L2-regularized logistic regression, with MEMBERSHIP_SIGNALS' weights bounded at zero."""
    weights, intercept = fit_bounded_logistic(
        examples, labels, c, np.array([name in MEMBERSHIP_SIGNALS for name in SIGNALS])
    )
    return weights.astype(np.float32), intercept


def fit_bounded_logistic(
    examples: np.ndarray, labels: np.ndarray, c: float, non_negative: np.ndarray
) -> tuple[np.ndarray, float]:
    """L2-regularized logistic regression whose weights in `non_negative` columns stay >= 0.

    Solved with L-BFGS-B on standardized columns (scikit-learn's LogisticRegression has no
    bounds); returns weights and intercept for the raw columns.
    """
    mean = examples.mean(axis=0)
    scale = examples.std(axis=0)
    scale[scale == 0] = 1.0
    z = ((examples - mean) / scale).astype(examples.dtype, copy=False)  # float32 halves each step
    y = labels.astype(np.float64)
    n, d = z.shape

    def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:d], params[d]
        logits = (z @ w.astype(z.dtype)).astype(np.float64) + b  # z's own precision for the big products
        loss = (np.logaddexp(0.0, logits).sum() - y @ logits) / n + (w @ w) / (2 * c * n)
        residual = 1.0 / (1.0 + np.exp(-logits)) - y
        step = (z.T @ residual.astype(z.dtype)).astype(np.float64)
        gradient = np.append(step / n + w / (c * n), residual.sum() / n)
        return float(loss), gradient

    bounds = [(0.0, None) if flag else (None, None) for flag in non_negative]
    result = minimize(
        loss_and_gradient,
        np.zeros(d + 1),
        jac=True,
        method="L-BFGS-B",
        bounds=[*bounds, (None, None)],
    )
    weights = result.x[:d] / scale
    intercept = float(result.x[d] - (result.x[:d] * mean / scale).sum())
    return weights, intercept


def _membership_matrices(
    track_ids: pd.Index, artist_codes: np.ndarray, n_artists: int, memberships: pd.DataFrame
) -> dict[str, Any]:
    """The CatalogIndex fields that come from visible memberships."""
    rows = track_ids.get_indexer(memberships["track_id"])
    keep = rows >= 0
    kept = memberships[keep]
    playlist_codes, playlist_ids = pd.factorize(kept["playlist_id"])
    n_playlists = len(playlist_ids)
    ones = np.ones(len(kept), dtype=np.float32)
    tracks = sparse.csr_matrix((ones, (rows[keep], playlist_codes)), shape=(len(track_ids), n_playlists))
    artists = artist_codes[rows[keep]]
    known = artists >= 0
    by_artist = sparse.csr_matrix(
        (ones[known], (artists[known], playlist_codes[known])), shape=(n_artists, n_playlists)
    )
    # Each playlist's subgenre (its most common listing), one-hot: playlists x subgenres.
    subgenre_codes, _ = pd.factorize(kept["subgenre"].to_numpy(), sort=True)
    playlist_subgenre = (
        pd.DataFrame({"playlist": playlist_codes, "subgenre": subgenre_codes})
        .groupby("playlist")["subgenre"]
        .agg(lambda codes: codes.value_counts().index[0])
    )
    n_subgenres = int(subgenre_codes.max(initial=-1)) + 1
    one_hot = sparse.csr_matrix(
        (np.ones(n_playlists, dtype=np.float32), (playlist_subgenre.index, playlist_subgenre.to_numpy())),
        shape=(n_playlists, max(n_subgenres, 1)),
    )
    # Column-major, like unit_features: a product with one playlist's profile per request.
    artist_profiles = np.asfortranarray(
        np.vstack(
            [
                _normalized_rows(np.asarray((by_artist @ one_hot).todense())),
                np.zeros((1, max(n_subgenres, 1)), dtype=np.float32),
            ]
        )
    )
    return {
        "playlists": tracks,
        "track_subgenres": _normalized_rows(np.asarray((tracks @ one_hot).todense())),
        "artist_subgenres": artist_profiles,
    }


def _normalized_rows(values: np.ndarray) -> np.ndarray:
    totals = values.sum(axis=1, keepdims=True)
    totals[totals == 0] = 1.0
    return (values / totals).astype(np.float32)


def _unit_rows(values: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return values / norms


# --------------------------------------------------------------------------- re-ranking

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
    seen: _Seeds | None = None,
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
        # building the (n, d(d+1)/2) product matrix (0.1 ms of a request for 300 candidates).
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


# --------------------------------------------------------------------------- hybrid


class HybridRecommender:
    """A linear ranker over catalog signals, its weights learned from playlist continuations.

    fit() simulates the evaluation protocol on the training playlists only (playlists marked
    `evaluation` in the memberships are never used to learn the weights): it hides a seeded
    share of each playlist, computes the signals of every catalog track from the rest, keeps
    the strongest candidates plus random ones, and fits a logistic regression that tells the
    hidden tracks from the others. Then, on the `candidates_per_playlist` tracks those weights
    rank first, it fits the re-ranker (PairwiseReranker): on the evaluation playlists Recall@100
    rose from 0.381 to 0.433 and NDCG@10 from 0.278 to 0.336, for about 0.3 ms more per request.
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        holdout_share: float = 0.2,
        candidates_per_playlist: int = 300,
        random_negatives_per_playlist: int = 300,
        regularization_c: float = 1.0,
        mining_rounds: int = 3,
        min_playlist_tracks: int = 5,
        seed: int = 42,
    ) -> None:
        self.feature_names = tuple(feature_names)
        self.holdout_share = holdout_share
        self.candidates_per_playlist = candidates_per_playlist
        self.random_negatives_per_playlist = random_negatives_per_playlist
        self.regularization_c = regularization_c
        self.mining_rounds = mining_rounds
        self.min_playlist_tracks = min_playlist_tracks
        self.seed = seed

    def fit(self, catalog: pd.DataFrame, memberships: pd.DataFrame) -> HybridRecommender:
        self.index_ = CatalogIndex.build(catalog, memberships, self.feature_names)
        training = memberships[~memberships["evaluation"].to_numpy(dtype=bool)]
        simulated, tasks = self._simulated_continuations(training, memberships)
        if not tasks:
            raise ValueError("no training playlist is large enough to learn the ranking weights from")
        rng = np.random.default_rng(self.seed)
        examples: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        weights: np.ndarray | None = None
        # Hard-negative mining: each round adds the tracks the current weights rank highest, so
        # the ranker learns to separate the hidden tracks from their strongest competitors.
        for _ in range(self.mining_rounds):
            for seeds, targets in tasks:
                signals = simulated.signals(Playlist(positions=seeds))
                if weights is None:
                    ranking = (
                        signals[:, 0]
                        + signals[:, 1]
                        + signals[:, 2]
                        + 0.05 * signals[:, SIGNALS.index("audio_cosine")]
                    )
                else:
                    ranking = signals @ weights
                ranking[seeds] = -np.inf
                n_top = min(self.candidates_per_playlist, len(ranking) - 1)
                top = np.argpartition(-ranking, n_top)[:n_top]
                noise = rng.choice(
                    len(ranking), size=min(self.random_negatives_per_playlist, len(ranking)), replace=False
                )
                candidates = np.setdiff1d(np.union1d(np.union1d(top, noise), targets), seeds)
                examples.append(signals[candidates])
                labels.append(np.isin(candidates, targets))
            weights, intercept = fit_ranking_weights(
                np.vstack(examples), np.concatenate(labels), self.regularization_c
            )
        self.weights_: np.ndarray = weights if weights is not None else np.zeros(len(SIGNALS), np.float32)
        self.intercept_ = intercept
        self.n_training_examples_ = int(sum(len(y) for y in labels))
        # The re-ranker learns from the same simulated continuations, on what the linear ranker
        # now puts first: the candidates it will re-rank in use.
        rerank_features: list[np.ndarray] = []
        rerank_hits: list[np.ndarray] = []
        for seeds, targets in tasks:
            playlist = Playlist(positions=seeds)
            linear = simulated.weighted_score(playlist, self.weights_)
            top, features = candidate_features(simulated, playlist, linear, self.candidates_per_playlist)
            rerank_features.append(features)
            rerank_hits.append(np.isin(top, targets))
        self.reranker_: PairwiseReranker | None = PairwiseReranker.fit(
            np.vstack(rerank_features), np.concatenate(rerank_hits), self.regularization_c
        )
        return self

    def _simulated_continuations(
        self, training: pd.DataFrame, memberships: pd.DataFrame
    ) -> tuple[CatalogIndex, list[tuple[np.ndarray, np.ndarray]]]:
        """Hide a seeded share of each training playlist; return the index without those
        memberships and each playlist's (visible positions, hidden positions)."""
        pairs = training[["playlist_id", "track_id"]].drop_duplicates()
        sizes = pairs.groupby("playlist_id")["track_id"].transform("size")
        pairs = pairs[sizes >= self.min_playlist_tracks].reset_index(drop=True)
        # A seed other than the evaluation split's, so the simulated holdout is a fresh draw.
        draw = stable_uniform(pairs["playlist_id"] + "/" + pairs["track_id"], self.seed + 1)
        rank = pd.Series(draw).groupby(pairs["playlist_id"]).rank(method="first")
        size = pairs.groupby("playlist_id")["track_id"].transform("size")
        hidden = (rank <= np.maximum(1, np.ceil(self.holdout_share * size))).to_numpy()
        hidden_keys = set(pairs.loc[hidden, "playlist_id"] + "/" + pairs.loc[hidden, "track_id"])
        member_keys = memberships["playlist_id"] + "/" + memberships["track_id"]
        # Learn from what the simulation leaves visible, exactly as evaluation will.
        simulated = self.index_.with_playlists(memberships[~member_keys.isin(hidden_keys).to_numpy()])
        positions = self.index_.track_ids.get_indexer(pairs["track_id"])
        tasks = [
            (
                group.loc[~group["hidden"], "position"].to_numpy(),
                group.loc[group["hidden"], "position"].to_numpy(),
            )
            for _, group in pairs.assign(position=positions, hidden=hidden).groupby("playlist_id", sort=True)
        ]
        return simulated, tasks

    def with_catalog(self, catalog: pd.DataFrame, memberships: pd.DataFrame) -> HybridRecommender:
        """The same learned weights over another catalog (e.g. a larger one, for benchmarks)."""
        clone = HybridRecommender(
            self.feature_names,
            self.holdout_share,
            self.candidates_per_playlist,
            self.random_negatives_per_playlist,
            self.regularization_c,
            self.mining_rounds,
            self.min_playlist_tracks,
            self.seed,
        )
        clone.index_ = CatalogIndex.build(catalog, memberships, self.feature_names)
        clone.weights_ = self.weights_
        clone.intercept_ = self.intercept_
        clone.reranker_ = self.reranker
        clone.n_training_examples_ = self.n_training_examples_
        return clone

    @property
    def reranker(self) -> PairwiseReranker | None:
        return getattr(self, "reranker_", None)  # None in bundles fitted before re-ranking

    def score(self, playlist: Playlist) -> np.ndarray:
        """The linear ranker's chance that each track belongs in the playlist; its
        `candidates_per_playlist` best (never the playlist's own) re-ranked above all others,
        scored 1 + the re-ranker's chance."""
        seen = self.index_._seeds(playlist)  # once, for both stages
        linear = self.index_.weighted_score(playlist, self.weights_, seen)
        chance = 1.0 / (1.0 + np.exp(-(linear.astype(np.float32) + np.float32(self.intercept_))))
        reranker = self.reranker
        if reranker is None:
            return chance
        top, features = candidate_features(self.index_, playlist, linear, self.candidates_per_playlist, seen)
        if len(top):
            chance[top] = 1.0 + reranker.probability(features)
        return chance

    def best_tracks(self, playlist: Playlist, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`top_k(score(playlist), k, exclude=playlist.positions)` and those tracks' chances.

        When k is within the re-ranked candidates the answer is among them, so the catalog is
        scored once (the linear ranker) and the k are picked from the candidates, without the
        catalog-wide sigmoid and second partition of `score`.
        """
        reranker = self.reranker
        if reranker is None or k > self.candidates_per_playlist:
            scores = self.score(playlist)
            best = top_k(scores, k, exclude=playlist.positions)
            return best, self.probability(scores[best])
        seen = self.index_._seeds(playlist)
        linear = self.index_.weighted_score(playlist, self.weights_, seen)
        top, features = candidate_features(self.index_, playlist, linear, self.candidates_per_playlist, seen)
        # Rounded as score() stores them (float32), so equal scores go, as in top_k, to the lower
        # position (`top` is in catalog order and the sort is stable).
        stored = (1.0 + reranker.probability(features)).astype(np.float32)
        order = np.argsort(-stored, kind="stable")[: max(k, 0)]
        return top[order], self.probability(stored[order])

    def probability(self, scores: np.ndarray) -> np.ndarray:
        """The fitted chance that a track scored so belongs in the playlist."""
        scores = np.asarray(scores, dtype=np.float64)
        return np.where(scores > 1.0, scores - 1.0, scores)

    @property
    def signal_weights(self) -> dict[str, float]:
        return {name: float(w) for name, w in zip(SIGNALS, self.weights_, strict=True)}


# --------------------------------------------------------------------------- baselines


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


def best_tracks(recommender: Recommender, playlist: Playlist, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best tracks for the playlist (never its own), best first, and the scores to show:
    the fitted chance for songrec's recommender, the raw score for the others."""
    if isinstance(recommender, HybridRecommender):
        return recommender.best_tracks(playlist, k)
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

    argpartition over the shipped catalog's 28,355 scores takes 0.4 ms; the threshold costs
    0.03 ms and leaves about 2(k + 1) values to partition. The sample's rank has 8 to spare,
    so that an unlucky sample (too few values below its threshold) is rare.
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
