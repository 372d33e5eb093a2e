"""The reference system's recommender (micheldpd24/mlops_air_msr), kept as the baseline to beat.

Its recipe, as params.yaml's `train_reference` section configures it:
1. a GradientBoostingClassifier (learning_rate 0.008, max_depth 5, 250 trees) predicts a
   track's genre from key, acousticness, danceability, energy, instrumentalness, loudness,
   speechiness, valence and tempo;
2. per genre, a GaussianMixture (3 spherical components, random_state 42) clusters the
   min-max-scaled features of that genre's tracks;
3. a playlist's recommendations are the tracks of its predicted genre and dominant cluster,
   ranked by cosine similarity to the playlist's mean (scaled) feature vector.
Tracks outside that genre and cluster rank after all tracks inside it (by the same cosine), so
Recall@K is defined for any K.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import MinMaxScaler

from songrec.core.hashing import at_most
from songrec.models.recommender.base import Playlist


class ReferenceModel:
    """The reference genre classifier and per-genre mixtures, fitted on the catalog."""

    def __init__(
        self,
        features: Sequence[str],
        learning_rate: float = 0.008,
        max_depth: int = 5,
        n_estimators: int = 250,
        mixture_components: int = 3,
        mixture_covariance: str = "spherical",
        mixture_seed: int = 42,
        seed: int = 42,
        max_training_tracks: int | None = None,
    ) -> None:
        self.features = tuple(features)
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.n_estimators = n_estimators
        self.mixture_components = mixture_components
        self.mixture_covariance = mixture_covariance
        self.mixture_seed = mixture_seed
        self.seed = seed
        self.max_training_tracks = max_training_tracks

    def fit(self, catalog: pd.DataFrame, on_tree: Callable[[], object] | None = None) -> ReferenceModel:
        """Fit the classifier on the labelled training tracks, the mixtures on every track (on a
        large catalog, each on a seeded sample of at most `max_training_tracks`: the reference is
        a baseline, not worth hours); `on_tree` is called after each boosting stage (progress)."""
        train = catalog[catalog["split"] == "train"]
        train = train[at_most(train["track_id"], self.max_training_tracks, self.seed, "reference")]
        catalog = catalog[at_most(catalog["track_id"], self.max_training_tracks, self.seed, "mixtures")]
        self.n_training_tracks_ = len(train)

        def after_each_tree(*_: object) -> bool:
            if on_tree is not None:
                on_tree()
            return False  # never stop early

        self.classifier_ = GradientBoostingClassifier(
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            n_estimators=self.n_estimators,
            random_state=self.seed,
        ).fit(
            train[list(self.features)].to_numpy(),
            train["genre"].to_numpy(),
            monitor=after_each_tree,
        )
        values = catalog[list(self.features)].to_numpy()
        self.scaler_ = MinMaxScaler().fit(values)
        genres = self.catalog_genres(catalog)
        scaled = self.scaler_.transform(values)
        self.mixtures_: dict[str, GaussianMixture] = {}
        for genre in sorted(set(genres)):
            members = scaled[genres == genre]
            self.mixtures_[genre] = GaussianMixture(
                n_components=min(self.mixture_components, len(members)),
                covariance_type=self.mixture_covariance,
                random_state=self.mixture_seed,
            ).fit(members)
        return self

    def catalog_genres(self, catalog: pd.DataFrame) -> np.ndarray:
        """Each track's genre: its visible label, else the classifier's prediction."""
        predicted = self.classifier_.predict(catalog[list(self.features)].to_numpy())
        labels = catalog["genre"].to_numpy(dtype=object)
        return np.where(pd.isna(labels), predicted, labels).astype(str)


class ReferenceRecommender:
    """The reference recommendation rule over one catalog."""

    def __init__(self, model: ReferenceModel, catalog: pd.DataFrame) -> None:
        self.model = model
        self.values = catalog[list(model.features)].to_numpy()
        self.scaled = model.scaler_.transform(self.values)
        self.unit = self.scaled / np.maximum(np.linalg.norm(self.scaled, axis=1, keepdims=True), 1e-9)
        self.genres = model.catalog_genres(catalog)
        self.clusters = np.zeros(len(catalog), dtype=np.int64)
        for genre, mixture in model.mixtures_.items():
            members = self.genres == genre
            if members.any():
                self.clusters[members] = mixture.predict(self.scaled[members])

    def score(self, playlist: Playlist) -> np.ndarray:
        """Cosine to the playlist's mean vector, inside its genre and dominant cluster first.

        Tracks given only by features are not used: the reference system knew none.
        """
        seeds = playlist.positions
        if len(seeds) == 0:
            return np.zeros(len(self.unit), dtype=np.float32)
        seed_values = self.scaled[seeds]
        predicted = self.model.classifier_.predict(self.values[seeds])
        genres, counts = np.unique(predicted, return_counts=True)
        genre = str(genres[np.argmax(counts)])
        cluster = int(np.bincount(self.model.mixtures_[genre].predict(seed_values)).argmax())
        centroid = seed_values.mean(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-9)
        cosine = self.unit @ centroid
        inside = (self.genres == genre) & (self.clusters == cluster)
        return np.where(inside, cosine, cosine - 10.0).astype(np.float32)
