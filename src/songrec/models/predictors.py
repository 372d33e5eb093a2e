"""The genre classifier and the popularity regressor.

Both are scikit-learn pipelines: the track's numbers (audio features and release year) pass
through, its artist (and, for popularity, its album) is target-encoded, and a histogram
gradient boosting model learns from the result. TargetEncoder cross-fits inside `fit`, so no
track's own label leaks into its encoding; categories never seen in training (a new artist, a
track given only by its features) get the training mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import TargetEncoder

from songrec.config.params import BoostingParams

UNKNOWN = ""  # the category of a missing artist or album


def genre_classifier(params: BoostingParams, numeric: Sequence[str], seed: int) -> Pipeline:
    encode = ColumnTransformer(
        [
            ("numbers", "passthrough", list(numeric)),
            (
                "artist",
                TargetEncoder(target_type="multiclass", cv=KFold(5, shuffle=True, random_state=seed)),
                ["track_artist"],
            ),
        ]
    )
    model = HistGradientBoostingClassifier(
        max_iter=params.max_iter,
        learning_rate=params.learning_rate,
        max_leaf_nodes=params.max_leaf_nodes,
        l2_regularization=params.l2_regularization,
        early_stopping=False,
        random_state=seed,
    )
    return Pipeline([("encode", encode), ("model", model)])


def popularity_regressor(params: BoostingParams, numeric: Sequence[str], seed: int) -> Pipeline:
    folds = KFold(5, shuffle=True, random_state=seed)
    encode = ColumnTransformer(
        [
            ("numbers", "passthrough", list(numeric)),
            ("artist", TargetEncoder(target_type="continuous", cv=folds), ["track_artist"]),
            ("album", TargetEncoder(target_type="continuous", cv=folds), ["track_album_id"]),
        ]
    )
    model = HistGradientBoostingRegressor(
        max_iter=params.max_iter,
        learning_rate=params.learning_rate,
        max_leaf_nodes=params.max_leaf_nodes,
        l2_regularization=params.l2_regularization,
        early_stopping=False,
        random_state=seed,
    )
    return Pipeline([("encode", encode), ("model", model)])


def model_inputs(tracks: pd.DataFrame, numeric: Sequence[str]) -> pd.DataFrame:
    """The columns both predictors read, with missing artist/album as the unknown category."""
    frame = pd.DataFrame({name: tracks[name].astype("float64") for name in numeric})
    for column in ("track_artist", "track_album_id"):
        values = tracks[column] if column in tracks else pd.Series(UNKNOWN, index=tracks.index)
        frame[column] = values.fillna(UNKNOWN).astype(str).to_numpy()
    return frame
