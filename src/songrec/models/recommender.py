"""Recommenders: a playlist in, one score per catalog track out.

Every recommender here answers `score(playlist)` with one number per catalog track (higher is
better), so evaluation, the bundle and the API treat them alike. The playlist's own tracks are
removed by `recommend`, never by the scorers.

- HybridRecommender (songrec's own): a linear ranker over signals a real catalog holds:
  shared artist, shared album, co-membership in (visible) playlists, audio similarity, release
  year and popularity. Its weights are fitted by logistic regression on simulated
  continuations of the training playlists (hide part of each, learn to find it again).
- MostPopularRecommender and RandomRecommender: the simple baselines.
The reference system's recommender lives in models/reference.py.
"""

from __future__ import annotations

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
            unit_features=_unit_rows((values - mean) / scale).astype(np.float32),
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
        return CatalogIndex(**{**self.__dict__, **matrices})

    def signals(self, playlist: Playlist) -> np.ndarray:
        """The ranking signals of every catalog track for one playlist: (n_tracks, len(SIGNALS))."""
        return np.column_stack(self._signal_columns(playlist))

    def _signal_columns(self, playlist: Playlist) -> list[np.ndarray]:
        n_seeds = max(playlist.size, 1)
        seeds = playlist.positions
        seed_artists = np.concatenate([self.artist_codes[seeds], self._extra_artist_codes(playlist)])
        seed_artists = seed_artists[seed_artists >= 0]
        artist_share = self._share(self.artist_codes, seed_artists, len(self.artists), n_seeds)
        album_codes = self.album_codes[seeds]
        album_share = self._share(self.album_codes, album_codes[album_codes >= 0], self.n_albums, n_seeds)
        co_playlist = np.zeros(len(self), dtype=np.float32)
        if self.playlists.shape[1] and len(seeds):
            seed_playlists = np.asarray(self.playlists[seeds].sum(axis=0)).ravel()
            co_playlist = (self.playlists @ seed_playlists) / n_seeds
        # The playlist's subgenre profile, from its tracks' playlists and its artists' playlists.
        profile = self.track_subgenres[seeds].sum(axis=0) + self.artist_subgenres[seed_artists].sum(axis=0)
        profile = profile / max(float(profile.sum()), 1e-9)
        # Per artist first, then per track: the same products, without gathering an
        # (n_tracks x n_subgenres) matrix on every request (64 ms of 80 at 1,000,000 tracks).
        artist_subgenre_affinity = (self.artist_subgenres @ profile)[self.artist_codes]
        seed_vectors = [self.unit_features[seeds]]
        years = [self.year[seeds]]
        popularity = [self.popularity[seeds]]
        if playlist.extra_features is not None and len(playlist.extra_features):
            seed_vectors.append(self.standardize(playlist.extra_features).astype(np.float32))
            if playlist.extra_years is not None:
                years.append(playlist.extra_years.astype(np.float32))
        stacked = np.concatenate(seed_vectors)
        if len(stacked):
            centroid = stacked.mean(axis=0)
            centroid /= max(float(np.linalg.norm(centroid)), 1e-9)
            audio_cosine = self.unit_features @ centroid
        else:
            audio_cosine = np.zeros(len(self), dtype=np.float32)
        all_years = np.concatenate(years)
        if len(all_years):
            year_proximity = -np.abs(self.year - np.median(all_years)) / 10.0
            year_density = self._year_density(all_years)
        else:
            year_proximity = np.zeros(len(self), dtype=np.float32)
            year_density = np.zeros(len(self), dtype=np.float32)
        seed_popularity = np.concatenate(popularity)
        if len(seed_popularity):
            popularity_proximity = -np.abs(self.popularity - seed_popularity.mean())
        else:
            popularity_proximity = np.zeros(len(self), dtype=np.float32)
        return [
            artist_share,
            album_share,
            co_playlist,
            artist_subgenre_affinity,
            audio_cosine,
            self.popularity,
            popularity_proximity,
            year_proximity,
            year_density,
            (artist_share > 0).astype(np.float32),
            (album_share > 0).astype(np.float32),
            (co_playlist > 0).astype(np.float32),
        ]

    def _year_density(self, seed_years: np.ndarray) -> np.ndarray:
        """For each track, the share of the playlist released within about two years of it."""
        low = int(min(self.year.min(), seed_years.min()))
        high = int(max(self.year.max(), seed_years.max()))
        counts = np.bincount((seed_years - low).astype(np.int64), minlength=high - low + 1).astype(np.float32)
        kernel = np.array([0.25, 0.5, 1.0, 0.5, 0.25], dtype=np.float32)
        smooth = np.convolve(counts, kernel, mode="same") / len(seed_years)
        return smooth[(self.year - low).astype(np.int64)]

    def _extra_artist_codes(self, playlist: Playlist) -> np.ndarray:
        names = [name for name in playlist.extra_artists if name]
        if not names:
            return np.empty(0, np.int64)
        codes = self.artists.get_indexer(names)
        return codes[codes >= 0].astype(np.int64)

    @staticmethod
    def _share(codes: np.ndarray, seed_codes: np.ndarray, n_codes: int, n_seeds: int) -> np.ndarray:
        """For each track, the share of the playlist's tracks that share its code (-1: unknown)."""
        counts = np.zeros(n_codes + 1, dtype=np.float32)  # the last slot stays 0 for code -1
        if len(seed_codes):
            np.add.at(counts, seed_codes, 1.0)
        return counts[codes] / n_seeds


def fit_ranking_weights(examples: np.ndarray, labels: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """L2-regularized logistic regression, with MEMBERSHIP_SIGNALS' weights bounded at zero.

    Solved with L-BFGS-B on standardized columns (scikit-learn's LogisticRegression has no
    bounds); returns weights and intercept for the raw columns.
    """
    mean = examples.mean(axis=0)
    scale = examples.std(axis=0)
    scale[scale == 0] = 1.0
    z = (examples - mean) / scale
    y = labels.astype(np.float64)
    n, d = z.shape

    def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:d], params[d]
        logits = z @ w + b
        loss = (np.logaddexp(0.0, logits).sum() - y @ logits) / n + (w @ w) / (2 * c * n)
        residual = 1.0 / (1.0 + np.exp(-logits)) - y
        gradient = np.append(z.T @ residual / n + w / (c * n), residual.sum() / n)
        return float(loss), gradient

    bounds = [(0.0, None) if name in MEMBERSHIP_SIGNALS else (None, None) for name in SIGNALS]
    result = minimize(
        loss_and_gradient, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=[*bounds, (None, None)]
    )
    weights = result.x[:d] / scale
    intercept = float(result.x[d] - (result.x[:d] * mean / scale).sum())
    return weights.astype(np.float32), intercept


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
    artist_profiles = np.vstack(
        [
            _normalized_rows(np.asarray((by_artist @ one_hot).todense())),
            np.zeros((1, max(n_subgenres, 1)), dtype=np.float32),
        ]
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


# --------------------------------------------------------------------------- hybrid


class HybridRecommender:
    """A linear ranker over catalog signals, its weights learned from playlist continuations.

    fit() simulates the evaluation protocol on the training playlists only (playlists marked
    `evaluation` in the memberships are never used to learn the weights): it hides a seeded
    share of each playlist, computes the signals of every catalog track from the rest, keeps
    the strongest candidates plus random ones, and fits a logistic regression that tells the
    hidden tracks from the others.
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
        clone.n_training_examples_ = self.n_training_examples_
        return clone

    def score(self, playlist: Playlist) -> np.ndarray:
        columns = self.index_._signal_columns(playlist)
        total = np.zeros(len(self.index_), dtype=np.float32)
        for weight, column in zip(self.weights_, columns, strict=True):
            total += weight * column
        return total

    def probability(self, scores: np.ndarray) -> np.ndarray:
        """The fitted chance that a track scored so belongs in the playlist."""
        return 1.0 / (1.0 + np.exp(-(scores.astype(np.float64) + self.intercept_)))

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


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray) -> np.ndarray:
    """Positions of the k best scores, best first, never one of `exclude`."""
    scores = scores.astype(np.float32, copy=True)
    scores[exclude] = -np.inf
    k = min(k, len(scores) - len(np.unique(exclude)))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    best = np.argpartition(-scores, k - 1)[:k]
    return best[np.argsort(-scores[best], kind="stable")]
