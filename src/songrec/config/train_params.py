"""params.yaml's `train` sections read into the models' hyperparameters, each value checked
against its rule (a bad one names the key and the rule). Kept apart from params.py, which the
models import and which imports nothing of the configuration's machinery."""

from __future__ import annotations

from songrec.config.params import BoostingParams, ColdStartParams
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
