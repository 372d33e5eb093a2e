"""train_reference: fit the reference system's genre classifier and per-genre mixtures.

Reads data/processed/catalog.parquet and writes models/reference/reference.pkl. Its own
stage because the reference GradientBoostingClassifier takes minutes to fit: DVC reruns it
only when the catalog or its params change.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from songrec.config.manager import ConfigurationManager
from songrec.config.stage_configs import TrainReferenceConfig
from songrec.core.io import read_parquet, save_model
from songrec.core.progress import Progress
from songrec.models.reference import ReferenceModel

log = logging.getLogger(__name__)


def build_reference_model(config: TrainReferenceConfig) -> ReferenceModel:
    return ReferenceModel(
        features=config.features,
        learning_rate=config.learning_rate,
        max_depth=config.max_depth,
        n_estimators=config.n_estimators,
        mixture_components=config.mixture_components,
        mixture_covariance=config.mixture_covariance,
        mixture_seed=config.mixture_seed,
        seed=config.seed,
        max_training_tracks=config.max_training_tracks,
    )


def run(manager: ConfigurationManager) -> dict[str, Any]:
    config = manager.train_reference()
    catalog = read_parquet(config.catalog)
    started = time.perf_counter()
    with Progress(config.n_estimators, "reference model (gradient boosting)", log, unit="trees") as trees:
        model = build_reference_model(config).fit(catalog, on_tree=trees.update)
    seconds = time.perf_counter() - started
    save_model(model, config.model)
    return {"fit_seconds": round(seconds, 1)}
