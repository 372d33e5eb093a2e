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


@dataclass(frozen=True)
class BoostingParams:
    max_iter: int
    learning_rate: float
    max_leaf_nodes: int
    l2_regularization: float
