"""The models' hyperparameters as params.yaml's `train` section gives them.

The only part of the configuration the models read: plain values, no paths, no environment.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RecommenderParams:
    name: str
    training_holdout_share: float
    candidates_per_playlist: int
    random_negatives_per_playlist: int
    regularization_c: float
    # At most this many tracks of one artist on each page of 10 recommendations (10: no cap). A
    # ranking setting, not fitted: the model serves it as its default (models/recommender/diversity.py).
    max_per_artist: int = 10
    # The tracks plain co-occurrence ranks first, re-ranked with the linear ranker's best, and
    # the weight of log1p(co-occurrence count with the seeds) added to the re-ranker's log-odds.
    co_listened_candidates: int = 50
    co_listening_boost: float = 0.0
    # The recommender learns its weights from at most this many training playlists (a seeded
    # sample; None: all of them).
    max_training_playlists: int | None = None


@dataclass(frozen=True)
class BoostingParams:
    max_iter: int
    learning_rate: float
    max_leaf_nodes: int
    l2_regularization: float


@dataclass(frozen=True)
class ColdStartParams:
    """The cold models, for tracks by artists the training split lacks (models/cold_start.py)."""

    # The share of training rows whose title and album name the cold models see blanked, so they
    # also learn to predict from audio alone (a track given only by its features).
    blank_text_share: float
    # Boosting iterations of the cold genre model; its other settings are the warm model's.
    genre_max_iter: int
    # Each training row weighs 1/n^power, n its artist's training tracks (0: all rows alike).
    artist_weight_power: float
    # For a new artist's track: the cold model's share of the answer, the warm model's the rest.
    genre_cold_share: float
    popularity_cold_share: float
