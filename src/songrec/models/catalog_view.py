"""Answers from one loaded bundle: recommendations, search, and the rows the predictors read.

`CatalogView` is built once per loaded bundle (off the request path, when the model is loaded
or swapped in): the catalog's display columns as plain lists and the search order as an array,
so a recommendation is the recommender's vectorized scoring plus a few list look-ups, without
building a DataFrame. It is the one implementation of recommending and searching: the API and
the MLflow pyfunc (models/pyfunc.py) both answer through it; predictions go through the bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from songrec.models.bundle import SongrecBundle
from songrec.models.recommender.base import Playlist
from songrec.models.recommender.diversity import artist_codes, spread_best_tracks
from songrec.models.recommender.hybrid import HybridRecommender

SPOTIFY_TRACK_URL = "https://open.spotify.com/track/{}"


@dataclass(frozen=True)
class FeatureRow:
    """A track given by its numeric features (in the bundle's order) and, maybe, its artist."""

    values: Sequence[float]
    artist: str | None = None


def feature_rows(tracks: pd.DataFrame | None, numeric_features: Sequence[str]) -> list[FeatureRow]:
    """The FeatureRows of a frame of tracks (numeric features, and `track_artist` if present)."""
    if tracks is None or tracks.empty:
        return []
    values = tracks[list(numeric_features)].to_numpy(dtype=np.float64).tolist()
    artists = tracks["track_artist"].tolist() if "track_artist" in tracks else [None] * len(tracks)
    return [
        FeatureRow(row, artist if isinstance(artist, str) else None)
        for row, artist in zip(values, artists, strict=True)
    ]


@dataclass(frozen=True)
class Resolved:
    """A request's catalog ids resolved: positions (deduplicated, in order) and the rest."""

    positions: np.ndarray
    indexes: list[int]  # for each position, the index of its first mention in the request
    unknown: list[str]


@dataclass(frozen=True)
class RecommendAnswer:
    tracks: list[dict[str, Any]]
    unknown_track_ids: list[str]


class CatalogView:
    """A bundle's catalog as lists and arrays, for answers that build no DataFrame."""

    def __init__(self, bundle: SongrecBundle) -> None:
        catalog = bundle.catalog
        self.bundle = bundle
        self.numeric_features = bundle.numeric_features
        self.track_ids: list[str] = catalog["track_id"].astype(str).tolist()
        self.names = _texts(catalog["track_name"])
        self.artists = _texts(catalog["track_artist"])
        self.artist_codes = artist_codes(catalog["track_artist"])
        self.albums = _texts(catalog["track_album_name"])
        self.years = _integers(catalog["year"])
        self.popularity = _integers(catalog["popularity"])
        self.genres: list[str] = [str(g) for g in bundle.display_genre]
        # Search scans the catalog most popular first (ties by id): its first hits are the answer.
        popularity = catalog["popularity"].to_numpy(dtype=np.float64)
        self._search_order = np.lexsort((np.asarray(self.track_ids, dtype=object), -popularity))
        self._search_names = [(self.names[i] or "").lower() for i in self._search_order]
        self._search_artists = [(self.artists[i] or "").lower() for i in self._search_order]
        # A dict answers a request's few ids at once; pandas' get_indexer builds an Index from
        # them on every request, which costs more than the rest of the look-up.
        self._positions = {track_id: position for position, track_id in enumerate(self.track_ids)}
        # The predictions look ids up in the bundle's Index, whose hash table pandas builds on
        # first use (slow for a large catalog): build it now, while loading.
        bundle.track_index.get_indexer(self.track_ids[:1])
        if isinstance(bundle.recommender, HybridRecommender):
            bundle.recommender.index_.prepare()

    def __len__(self) -> int:
        return len(self.track_ids)

    # ----------------------------------------------------------------------- look-ups

    def resolve(self, track_ids: Sequence[str]) -> Resolved:
        first: dict[str, int] = {}
        for index, track_id in enumerate(track_ids):
            first.setdefault(track_id, index)
        ids = list(first)
        found = np.array([self._positions.get(track_id, -1) for track_id in ids], dtype=np.int64)
        known = found >= 0
        return Resolved(
            positions=found[known].astype(np.int64),
            indexes=[first[i] for i, ok in zip(ids, known, strict=True) if ok],
            unknown=[i for i, ok in zip(ids, known, strict=True) if not ok],
        )

    def summary(self, position: int) -> dict[str, Any]:
        return {
            "track_id": self.track_ids[position],
            "track_name": self.names[position],
            "track_artist": self.artists[position],
            "track_album_name": self.albums[position],
            "year": self.years[position],
            "popularity": self.popularity[position],
            "genre": self.genres[position],
            "spotify_url": SPOTIFY_TRACK_URL.format(self.track_ids[position]),
        }

    def search(self, query: str, limit: int) -> list[int]:
        """Positions of at most `limit` tracks whose name or artist contains `query`
        (case-insensitive, surrounding spaces ignored), most popular first, ties by id."""
        needle = query.strip().lower()
        if not needle or limit <= 0:
            return []
        hits: list[int] = []
        for position, name, artist in zip(
            self._search_order, self._search_names, self._search_artists, strict=True
        ):
            if needle in name or needle in artist:
                hits.append(int(position))
                if len(hits) == limit:
                    break
        return hits

    # ----------------------------------------------------------------------- answers

    def recommend(
        self, resolved: Resolved, rows: Sequence[FeatureRow], k: int, max_per_artist: int | None = None
    ) -> RecommendAnswer:
        """The k best tracks for the playlist (never its own), best first, at most
        `max_per_artist` of one artist on each page of 10 (None: the bundle's default), as dicts:
        rank, track_id, track_name, track_artist, genre, score (the shown chance, 6 decimals) and
        spotify_url; also the ids the catalog does not know."""
        playlist = self.playlist(resolved.positions, rows)
        cap = self.bundle.max_per_artist if max_per_artist is None else max_per_artist
        best, shown = spread_best_tracks(self.bundle.recommender, playlist, k, self.artist_codes, cap)
        tracks = self.ranked(best.tolist(), np.round(shown, 6).tolist())
        return RecommendAnswer(tracks=tracks, unknown_track_ids=resolved.unknown)

    def ranked(self, positions: Sequence[int], scores: Sequence[float]) -> list[dict[str, Any]]:
        """Ranked tracks as the API shows them (also for lists scored earlier, in a batch)."""
        return [
            {
                "rank": rank,
                "track_id": self.track_ids[position],
                "track_name": self.names[position],
                "track_artist": self.artists[position],
                "genre": self.genres[position],
                "score": float(score),
                "spotify_url": SPOTIFY_TRACK_URL.format(self.track_ids[position]),
            }
            for rank, (position, score) in enumerate(zip(positions, scores, strict=True), 1)
        ]

    def position(self, track_id: str) -> int | None:
        return self._positions.get(track_id)

    def playlist(self, positions: np.ndarray, rows: Sequence[FeatureRow]) -> Playlist:
        """The Playlist the recommender scores: catalog positions, and feature rows for the
        tracks the catalog does not know."""
        if not rows:
            return Playlist(positions=positions)
        values = np.asarray([row.values for row in rows], dtype=np.float64)
        year = self.numeric_features.index("year")
        return Playlist(
            positions=positions,
            extra_features=values,
            extra_artists=tuple(row.artist or None for row in rows),
            extra_years=values[:, year].copy(),
        )

    def model_inputs(self, resolved: Resolved, rows: Sequence[FeatureRow]) -> pd.DataFrame:
        """The rows the genre and popularity models read: catalog tracks first, then feature rows."""
        features = None
        if rows:
            features = pd.DataFrame([row.values for row in rows], columns=list(self.numeric_features))
            features["track_artist"] = [row.artist for row in rows]
        return self.bundle.tracks_for([self.track_ids[p] for p in resolved.positions], features)

    def predict_genre(self, resolved: Resolved, rows: Sequence[FeatureRow]) -> list[dict[str, Any]]:
        frame = self.bundle.predict_genre(self.model_inputs(resolved, rows))
        columns = [f"p_{genre}" for genre in self.bundle.genres]
        probabilities = frame[columns].to_numpy(dtype=np.float64).round(6).tolist()
        return [
            {**origin, "genre": str(genre), "probabilities": dict(zip(self.bundle.genres, p, strict=True))}
            for origin, genre, p in zip(
                self._origins(resolved, rows), frame["genre"], probabilities, strict=True
            )
        ]

    def predict_popularity(self, resolved: Resolved, rows: Sequence[FeatureRow]) -> list[dict[str, Any]]:
        predicted = self.bundle.predict_popularity(self.model_inputs(resolved, rows))
        return [
            {**origin, "popularity": round(float(value), 3)}
            for origin, value in zip(self._origins(resolved, rows), predicted.tolist(), strict=True)
        ]

    def _origins(self, resolved: Resolved, rows: Sequence[FeatureRow]) -> list[dict[str, Any]]:
        known = [
            {"input": "track_ids", "index": index, "track_id": self.track_ids[position]}
            for index, position in zip(resolved.indexes, resolved.positions.tolist(), strict=True)
        ]
        return known + [{"input": "tracks", "index": index, "track_id": None} for index in range(len(rows))]


def _texts(column: pd.Series) -> list[str | None]:
    return [value if isinstance(value, str) else None for value in column.tolist()]


def _integers(column: pd.Series) -> list[int | None]:
    return [None if pd.isna(value) else int(value) for value in column.tolist()]
