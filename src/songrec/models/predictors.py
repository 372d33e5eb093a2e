"""The genre classifier and the popularity regressor.

Both are scikit-learn pipelines: the track's numbers (audio features and release year) pass
through, its artist (and, for popularity, its album) is target-encoded, and a histogram
gradient boosting model learns from the result. TargetEncoder cross-fits inside `fit`, so no
track's own label leaks into its encoding; categories never seen in training (a new artist, a
track given only by its features) get the training mean.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import TargetEncoder

from songrec.config.params import BoostingParams
from songrec.models import flat_forest

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


def predict_proba(pipeline: Pipeline, inputs: pd.DataFrame) -> np.ndarray:
    """`pipeline.predict_proba(inputs)`: the encoding done by `encode`, a small batch by the flat walk."""
    if _encode_step(pipeline) is None:
        return np.asarray(pipeline.predict_proba(inputs))
    return flat_forest.predict_proba(pipeline[-1], encode(pipeline[0], inputs))


def predict(pipeline: Pipeline, inputs: pd.DataFrame) -> np.ndarray:
    """`pipeline.predict(inputs)`: the encoding done by `encode`, a small batch by the flat walk."""
    if _encode_step(pipeline) is None:
        return np.asarray(pipeline.predict(inputs))
    return flat_forest.predict(pipeline[-1], encode(pipeline[0], inputs))


def _encode_step(pipeline: Any) -> ColumnTransformer | None:
    first = pipeline[0] if isinstance(pipeline, Pipeline) and len(pipeline) == 2 else None
    return first if isinstance(first, ColumnTransformer) and first.remainder == "drop" else None


# Per fitted TargetEncoder, a dict from category to its index, built on first use. sklearn's own
# transform rebuilds that mapping from the categories on every call: with thousands of artists
# and albums that was most of a small prediction's cost, paid again by every API request and
# stream batch.
_CATEGORY_INDEX: weakref.WeakKeyDictionary[TargetEncoder, list[dict[Any, int]]] = weakref.WeakKeyDictionary()


def encode(columns: ColumnTransformer, inputs: pd.DataFrame) -> np.ndarray:
    """What the fitted ColumnTransformer's `transform` gives, the same numbers, faster: numbers
    pass through, each target encoder maps categories by a dict built once per model."""
    parts = []
    for _, transformer, names in columns.transformers_:
        if isinstance(transformer, str):  # "drop" (the remainder); songrec uses no other string
            continue
        if isinstance(transformer, TargetEncoder):
            parts.append(_target_encode(transformer, inputs[names]))
        else:
            parts.append(np.asarray(transformer.transform(inputs[names]), dtype=np.float64))
    return np.hstack(parts)


def _target_encode(encoder: TargetEncoder, frame: pd.DataFrame) -> np.ndarray:
    """TargetEncoder.transform: a category's encoding, the target mean for an unknown one."""
    index = _CATEGORY_INDEX.get(encoder)
    if index is None:
        index = [{category: i for i, category in enumerate(found)} for found in encoder.categories_]
        _CATEGORY_INDEX[encoder] = index
    n_features = frame.shape[1]
    ordinal = np.empty((len(frame), n_features), dtype=np.intp)
    for column in range(n_features):
        lookup = index[column]
        ordinal[:, column] = [lookup.get(value, -1) for value in frame.iloc[:, column].tolist()]
    unknown = ordinal < 0
    ordinal[unknown] = 0
    out = np.empty((len(frame), len(encoder.encodings_)), dtype=np.float64)
    n_classes = len(encoder.classes_) if encoder.target_type_ == "multiclass" else 1
    means = np.atleast_1d(encoder.target_mean_)
    for e_idx, encoding in enumerate(encoder.encodings_):
        feature = e_idx // n_classes  # multiclass: each feature has one column per class
        out[:, e_idx] = encoding[ordinal[:, feature]]
        out[unknown[:, feature], e_idx] = means[e_idx % n_classes]
    return out


def model_inputs(tracks: pd.DataFrame, numeric: Sequence[str]) -> pd.DataFrame:
    """The columns the predictors read, a missing artist, album, title or album name as the
    unknown category (the cold-start models read the last two, models/cold_start.py)."""
    frame = pd.DataFrame({name: tracks[name].astype("float64") for name in numeric})
    for column in ("track_artist", "track_album_id", "track_name", "track_album_name"):
        values = tracks[column] if column in tracks else pd.Series(UNKNOWN, index=tracks.index)
        frame[column] = values.fillna(UNKNOWN).astype(str).to_numpy()
    return frame
