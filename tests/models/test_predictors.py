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
    genre, popularity = bundle.genre_model.warm, bundle.popularity_model.warm  # the sklearn pipelines
    for pipeline in (genre, popularity):
        np.testing.assert_array_equal(encode(pipeline[0], inputs), pipeline[0].transform(inputs))
    np.testing.assert_array_equal(predict_proba(genre, inputs), genre.predict_proba(inputs))
    np.testing.assert_array_equal(predict(popularity, inputs), popularity.predict(inputs))
    # Feature rows alone (no artist, no album), as /predict and the stream scorer send them.
    bare = model_inputs(tracks[list(bundle.numeric_features)], bundle.numeric_features)
    np.testing.assert_array_equal(predict(popularity, bare), popularity.predict(bare))
