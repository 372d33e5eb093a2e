"""params.yaml's `train` sections read into the models' hyperparameters, each value checked
against its rule (a bad one names the key and the rule). Kept apart from params.py, which the
models import and which imports nothing of the configuration's machinery."""

from __future__ import annotations

from collections.abc import Sequence

from songrec.config.params import BoostingParams, ColdStartParams, RecommenderParams
from songrec.config.rules import Section


def boosting_params(section: Section) -> BoostingParams:
    return BoostingParams(
        max_iter=section.positive_int("max_iter"),
        learning_rate=section.positive_float("learning_rate"),
        max_leaf_nodes=section.get("max_leaf_nodes", int, check=lambda v: v >= 2, rule="must be >= 2"),
        l2_regularization=section.get(
            "l2_regularization", float, check=lambda v: v >= 0, rule="must be >= 0"
        ),
    )


def cold_start_params(section: Section) -> ColdStartParams:
    return ColdStartParams(
        blank_text_share=section.share("blank_text_share", allow_zero=True),
        genre_max_iter=section.positive_int("genre_max_iter"),
        artist_weight_power=section.get(
            "artist_weight_power", float, check=lambda v: 0 <= v <= 2, rule="must be in [0, 2]"
        ),
        genre_cold_share=section.fraction("genre_cold_share"),
        popularity_cold_share=section.fraction("popularity_cold_share"),
    )


def recommender_params(section: Section, recommenders: Sequence[str]) -> RecommenderParams:
    names = f"unknown recommender; choose one of {', '.join(recommenders)}"
    return RecommenderParams(
        name=section.get("name", str, check=lambda v: v in recommenders, rule=names),
        training_holdout_share=section.share("training_holdout_share"),
        candidates_per_playlist=section.positive_int("candidates_per_playlist"),
        random_negatives_per_playlist=section.positive_int("random_negatives_per_playlist"),
        regularization_c=section.positive_float("regularization_c"),
        max_per_artist=section.positive_int("max_per_artist"),
        co_listened_candidates=section.non_negative("co_listened_candidates", int),
        co_listening_boost=section.non_negative("co_listening_boost", float),
        max_training_playlists=section.limit("max_training_playlists"),
    )
