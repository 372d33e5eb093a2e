"""train: fit the model bundle (recommender, genre classifier, popularity regressor).

Reads data/processed/catalog.parquet, data/processed/memberships.parquet (visible memberships
only: the evaluation playlists' hidden tracks are not in it) and the reference model, and
writes models/bundle/bundle.pkl. params.yaml's `train` section configures every model;
`train.recommender.name` picks songrec's hybrid ranker or the reference system's rule.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from songrec.config.manager import ConfigurationManager
from songrec.config.stage_configs import TrainConfig
from songrec.contract.features import numeric_features
from songrec.core.io import load_model, read_parquet, require, save_model
from songrec.core.progress import heartbeat
from songrec.models.bundle import SongrecBundle
from songrec.models.cold_start import fit_cold_start
from songrec.models.predictors import genre_classifier, model_inputs, popularity_regressor
from songrec.models.recommender.base import Recommender
from songrec.models.recommender.diversity import effective_cap
from songrec.models.recommender.hybrid import HybridRecommender
from songrec.models.reference import ReferenceModel, ReferenceRecommender

log = logging.getLogger(__name__)


def fit_recommender(
    config: TrainConfig, catalog: pd.DataFrame, memberships: pd.DataFrame, reference: ReferenceModel | None
) -> Recommender:
    params = config.recommender
    if params.name == "reference":
        if reference is None:
            raise ValueError("the reference recommender needs the fitted reference model")
        return ReferenceRecommender(reference, catalog)
    numeric = numeric_features(config.schema.audio_features)
    return HybridRecommender.from_params(params, numeric, config.seed).fit(catalog, memberships)


def train_bundle(
    config: TrainConfig, catalog: pd.DataFrame, memberships: pd.DataFrame, reference: ReferenceModel | None
) -> SongrecBundle:
    """Fit all three models; the genre and popularity models see only the training split."""
    numeric = numeric_features(config.schema.audio_features)
    train = catalog[catalog["split"] == "train"]
    inputs = model_inputs(train, numeric)
    genres, popularity = train["genre"].astype(str).to_numpy(), train["popularity"].to_numpy(dtype=float)
    with heartbeat("fitting the genre classifier", log):
        warm_genre = genre_classifier(config.genre, numeric, config.seed).fit(inputs, genres)
    with heartbeat("fitting the popularity regressor", log):
        warm_popularity = popularity_regressor(config.popularity, numeric, config.seed)
        warm_popularity.fit(inputs, popularity)
    with heartbeat("fitting the cold-start models (new artists)", log):
        genre_model, popularity_model = fit_cold_start(
            warm_genre, warm_popularity, config.cold_start, (config.genre, config.popularity),
            numeric, inputs, genres, popularity, config.seed,
        )  # fmt: skip
    with heartbeat(f"fitting the {config.recommender.name} recommender", log):
        recommender = fit_recommender(config, catalog, memberships, reference)
    return SongrecBundle(
        catalog=catalog,
        recommender=recommender,
        recommender_name=config.recommender.name,
        genre_model=genre_model,
        popularity_model=popularity_model,
        numeric_features=numeric,
        metadata={"seed": config.seed, "training_tracks": len(train), "catalog_tracks": len(catalog)},
        max_per_artist=effective_cap(config.recommender.max_per_artist),
    )


def run(manager: ConfigurationManager) -> dict[str, Any]:
    config = manager.train()
    catalog = read_parquet(config.catalog)
    memberships = read_parquet(config.memberships)
    reference = (
        load_model(require(config.reference_model)) if config.recommender.name == "reference" else None
    )
    bundle = train_bundle(config, catalog, memberships, reference)
    save_model(bundle, config.bundle)
    summary: dict[str, Any] = {"recommender": config.recommender.name, "catalog_tracks": len(bundle)}
    if isinstance(bundle.recommender, HybridRecommender):
        summary["signal_weights"] = {k: round(v, 3) for k, v in bundle.recommender.signal_weights.items()}
    return summary
