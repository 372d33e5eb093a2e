"""The reference system's model: on a large catalog, fitted on a bounded sample."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from songrec.config.manager import ConfigurationManager
from songrec.models.reference import ReferenceModel


def test_the_reference_model_fits_on_at_most_its_sample_of_tracks(trained_project: Path) -> None:
    catalog = pd.read_parquet(ConfigurationManager(trained_project).transform().catalog)
    features = ["danceability", "energy", "tempo"]
    labelled = int((catalog["split"] == "train").sum())
    whole = ReferenceModel(features, n_estimators=3).fit(catalog)
    sampled = ReferenceModel(features, n_estimators=3, max_training_tracks=300).fit(catalog)
    assert whole.n_training_tracks_ == labelled > 300
    assert sampled.n_training_tracks_ == 300
    # Still a model of every genre, for every track of the catalog.
    assert set(sampled.mixtures_) == set(whole.mixtures_)
    assert len(sampled.catalog_genres(catalog)) == len(catalog)
