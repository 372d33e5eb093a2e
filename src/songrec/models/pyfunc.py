"""The bundle as an MLflow pyfunc model: one artifact for the registry, the API and `mlflow models serve`.

`predict(model_input, params={"task": ..., "k": ...})`:
- task "recommend" (default): the rows are one playlist's tracks (a `track_id` from the
  catalog, or audio features and `year` for a track the catalog does not know); the answer is
  the top-k tracks, best first (RECOMMENDATION_COLUMNS), as the API's CatalogView answers.
- task "genre": one row per track in, its genre and the probability of every genre out.
- task "popularity": one row per track in, its predicted popularity out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

try:  # MLflow is a heavy import; this module must stay importable for type checks without it.
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover
    PythonModel = object  # type: ignore[misc,assignment]

from songrec.models.bundle import SongrecBundle
from songrec.models.catalog_view import CatalogView, RecommendAnswer, feature_rows

TASKS = ("recommend", "genre", "popularity")
RECOMMENDATION_COLUMNS = ("rank", "track_id", "track_name", "track_artist", "genre", "score", "spotify_url")


class SongrecPyfunc(PythonModel):  # type: ignore[misc,unused-ignore]
    """Loads the bundle from the model's `bundle` artifact and answers the three tasks."""

    def __init__(self) -> None:
        self.view: CatalogView | None = None

    @property
    def bundle(self) -> SongrecBundle | None:
        """The loaded bundle (tracking.registry.load_bundle hands it out)."""
        return None if self.view is None else self.view.bundle

    def load_context(self, context: Any) -> None:
        import joblib

        self.view = CatalogView(joblib.load(context.artifacts["bundle"]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if self.view is None:
            raise RuntimeError("the bundle is not loaded")
        bundle = self.view.bundle
        params = params or {}
        task = str(params.get("task", "recommend"))
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
        frame = pd.DataFrame(model_input)
        track_ids, features = split_rows(frame, bundle)
        if task == "recommend":
            k = int(params.get("k", 10))
            answer = self.view.recommend(
                self.view.resolve(track_ids), feature_rows(features, bundle.numeric_features), k
            )
            return recommendations_frame(answer)
        tracks = bundle.tracks_for(track_ids, features)
        if task == "genre":
            return bundle.predict_genre(tracks).reset_index(drop=True)
        return pd.DataFrame({"popularity": bundle.predict_popularity(tracks)})


def recommendations_frame(answer: RecommendAnswer) -> pd.DataFrame:
    """The recommended tracks as a frame: one row per track, best first, typed also when empty."""
    frame = pd.DataFrame(answer.tracks, columns=list(RECOMMENDATION_COLUMNS))
    return frame.astype({"rank": np.int64, "score": np.float64})


def split_rows(frame: pd.DataFrame, bundle: SongrecBundle) -> tuple[Sequence[str], pd.DataFrame | None]:
    """Catalog ids, and the rows that carry their own features (no id, or an id not in the catalog)."""
    if "track_id" in frame:
        ids = frame["track_id"]
        known = ids.notna() & ids.astype(str).isin(bundle.track_index)
    else:
        known = pd.Series(False, index=frame.index)
    track_ids = frame.loc[known, "track_id"].astype(str).tolist() if known.any() else []
    rest = frame.loc[~known]
    needed = list(bundle.numeric_features)
    if rest.empty or not set(needed) <= set(rest.columns):
        return track_ids, None
    rest = rest.dropna(subset=needed)
    return track_ids, (rest if not rest.empty else None)
