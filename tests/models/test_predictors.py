"""The predictors' fast encoding gives exactly what scikit-learn's pipeline gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from songrec.config.manager import ConfigurationManager
from songrec.core.io import load_model
from songrec.models.bundle import SongrecBundle
from songrec.models.predictors import encode, model_inputs, predict, predict_proba


def test_fast_encoding_and_predictions_equal_sklearns(trained_project: Path) -> None:
    bundle: SongrecBundle = load_model(ConfigurationManager(trained_project).train().bundle)
    tracks = bundle.catalog.sample(min(500, len(bundle.catalog)), random_state=3).copy()
    tracks.loc[tracks.index[:20], "track_artist"] = "An Artist Nobody Knows"  # unknown: the mean
    tracks.loc[tracks.index[20:30], "track_album_id"] = None  # missing: the unknown category
    inputs = model_inputs(tracks, bundle.numeric_features)
    for pipeline in (bundle.genre_model, bundle.popularity_model):
        np.testing.assert_array_equal(encode(pipeline[0], inputs), pipeline[0].transform(inputs))
    np.testing.assert_array_equal(
        predict_proba(bundle.genre_model, inputs), bundle.genre_model.predict_proba(inputs)
    )
    np.testing.assert_array_equal(
        predict(bundle.popularity_model, inputs), bundle.popularity_model.predict(inputs)
    )
    # Feature rows alone (no artist, no album), as /predict and the stream scorer send them.
    bare = model_inputs(tracks[list(bundle.numeric_features)], bundle.numeric_features)
    np.testing.assert_array_equal(
        predict(bundle.popularity_model, bare), bundle.popularity_model.predict(bare)
    )
