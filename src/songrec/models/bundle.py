"""The model bundle: recommender, genre classifier and popularity regressor over one catalog.

This one object is what `train` writes, what MLflow logs and registers (wrapped as a pyfunc
model in models/pyfunc.py), and what the API serves. It holds the catalog and predicts genres
and popularity; recommendations and search are answered by a CatalogView over it
(models/catalog_view.py), built once per loaded bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from songrec.models.predictors import model_inputs, predict, predict_proba
from songrec.models.recommender.base import Recommender

DISPLAY_COLUMNS = ("track_id", "track_name", "track_artist", "track_album_name", "year", "popularity")


class SongrecBundle:
    """Everything needed to answer a request, fitted together and versioned together."""

    # The diversity setting served by default (models/recommender/diversity.py); a bundle pickled
    # before it existed has none, and ranks as it always did.
    max_per_artist: int | None = None

    def __init__(
        self,
        catalog: pd.DataFrame,
        recommender: Recommender,
        recommender_name: str,
        genre_model: Any,
        popularity_model: Any,
        numeric_features: Sequence[str],
        metadata: dict[str, Any] | None = None,
        max_per_artist: int | None = None,
    ) -> None:
        self.numeric_features = tuple(numeric_features)
        keep = list(dict.fromkeys([*DISPLAY_COLUMNS, "track_album_id", *self.numeric_features, "genre"]))
        self.catalog = catalog[keep].reset_index(drop=True)
        self.recommender = recommender
        self.recommender_name = recommender_name
        self.genre_model = genre_model
        self.popularity_model = popularity_model
        self.genres = tuple(str(g) for g in genre_model.classes_)
        self.metadata = dict(metadata or {})
        self.max_per_artist = max_per_artist
        self.track_index = pd.Index(self.catalog["track_id"])
        # Tracks without a visible label show the genre the classifier gives them.
        unlabeled = self.catalog["genre"].isna().to_numpy()
        display_genre = self.catalog["genre"].to_numpy(dtype=object)
        if unlabeled.any():
            display_genre[unlabeled] = self.genre_model.predict(
                model_inputs(self.catalog[unlabeled], self.numeric_features)
            )
        self.display_genre = display_genre.astype(str)

    # ----------------------------------------------------------------------- lookups

    def __len__(self) -> int:
        return len(self.catalog)

    def positions_of(self, track_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Catalog positions of the known ids (in order, without repeats) and the unknown ids."""
        ids = list(dict.fromkeys(str(t) for t in track_ids))
        positions = self.track_index.get_indexer(ids)
        unknown = [track_id for track_id, pos in zip(ids, positions, strict=True) if pos < 0]
        return positions[positions >= 0].astype(np.int64), unknown

    def catalog_tracks(self, track_ids: Sequence[str]) -> pd.DataFrame:
        positions, _ = self.positions_of(track_ids)
        return self.catalog.iloc[positions]

    # ----------------------------------------------------------------------- predictions

    def predict_genre(self, tracks: pd.DataFrame) -> pd.DataFrame:
        """The predicted genre of each track and the probability of every genre."""
        probabilities = predict_proba(self.genre_model, model_inputs(tracks, self.numeric_features))
        frame = pd.DataFrame(probabilities, columns=[f"p_{g}" for g in self.genres], index=tracks.index)
        frame.insert(0, "genre", np.asarray(self.genres)[probabilities.argmax(axis=1)])
        return frame

    def predict_popularity(self, tracks: pd.DataFrame) -> np.ndarray:
        predicted = predict(self.popularity_model, model_inputs(tracks, self.numeric_features))
        return np.clip(predicted, 0.0, 100.0)

    def tracks_for(self, track_ids: Sequence[str] = (), tracks: pd.DataFrame | None = None) -> pd.DataFrame:
        """Model inputs for catalog ids and feature rows together (catalog rows first)."""
        known = self.catalog_tracks(track_ids)
        parts = [known] + ([tracks] if tracks is not None and not tracks.empty else [])
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else known.reset_index(drop=True)
