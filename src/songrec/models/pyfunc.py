"""The bundle as an MLflow pyfunc model: one artifact for the registry, the API and `mlflow models serve`.

`predict(model_input, params={"task": ..., "k": ...})`:
- task "recommend" (default): the rows are one playlist's tracks; the answer is the top-k
  tracks, best first (RECOMMENDATION_TYPES: the output schema the logged signature declares),
  as the API's CatalogView answers. k is 1 to MAX_K (default 10); `max_per_artist` (1 to 10,
  default the model's) caps one artist's tracks on each page of 10.
- task "genre": one row out per row in, in the input's order: the predicted genre and the
  probability of every genre (`p_<genre>`).
- task "popularity": one row out per row in, in the input's order: `popularity` (0 to 100).
  k is not read by these two tasks.

The input is a pandas DataFrame, a dict of lists (one list per column) or a list of dicts (one
dict per track), with the columns `track_id`, `track_artist` and the numeric features (the
audio features and `year`). Each row is a track: by its `track_id` when the catalog knows it
(the catalog's features are used, any given with it are ignored), else by its numeric features,
all of them finite numbers (`track_artist` optional). A row whose id the catalog does not know
but that carries every feature is a track by its features. Any other row makes the whole call
fail with InvalidModelInput (a ValueError, and an MlflowException with error code
INVALID_PARAMETER_VALUE, so `mlflow models serve` answers HTTP 400 with the message); so do an
empty input, an unknown task and a k out of range. The message names the unknown ids and the
missing columns: a call never silently answers for fewer tracks than it was given.

With a signature (as `evaluate` logs the model), MLflow enforces it before `predict` runs: it
drops columns the signature does not name (with a warning) and turns a dict whose values are all
lists of strings (`{"track_id": [...]}`) into one row of lists; `input_frame` expands that row
back into columns. MLflow does not check outputs: the genre and popularity frames differ from
the declared output schema, which describes the default task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

try:  # MLflow is a heavy import; this module must stay importable for type checks without it.
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover
    PythonModel = object  # type: ignore[misc,assignment]
    INVALID_PARAMETER_VALUE = 1000  # type: ignore[assignment]

    class MlflowException(Exception):  # type: ignore[no-redef]
        def __init__(self, message: str, error_code: int = 0) -> None:
            super().__init__(message)
            self.message = message


from songrec.models.bundle import SongrecBundle
from songrec.models.catalog_view import CatalogView, RecommendAnswer, feature_rows
from songrec.models.recommender.diversity import PAGE

TASKS = ("recommend", "genre", "popularity")
DEFAULT_K = 10
# The largest k the model answers. The API has its own, configurable limit (serve.max_k, 100 by
# default); this one only stops absurd requests, since a logged model cannot read the config.
MAX_K = 1000
# The recommend task's output columns and their MLflow types: tracking.registry.model_signature
# declares them as the output schema, and recommendations_frame gives exactly these dtypes.
RECOMMENDATION_TYPES: dict[str, str] = {
    "rank": "long",
    "track_id": "string",
    "track_name": "string",
    "track_artist": "string",
    "genre": "string",
    "score": "double",
    "spotify_url": "string",
}
RECOMMENDATION_COLUMNS = tuple(RECOMMENDATION_TYPES)
OPTIONAL_OUTPUTS = frozenset({"track_name", "track_artist"})  # the catalog may lack them
_LISTED = 10  # ids or rows an error message names before it says "and N more"


class InvalidModelInput(MlflowException, ValueError):  # type: ignore[misc,unused-ignore]
    """Input or params the model cannot answer: a ValueError, and an MlflowException with error
    code INVALID_PARAMETER_VALUE (HTTP 400 under `mlflow models serve`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class SongrecPyfunc(PythonModel):  # type: ignore[misc,unused-ignore]
    """Loads the bundle from the model's `bundle` artifact and answers the three tasks."""

    def __init__(self) -> None:
        self.view: CatalogView | None = None

    @property
    def bundle(self) -> SongrecBundle | None:
        """The loaded bundle (tracking.registry.load_bundle hands it out)."""
        return None if self.view is None else self.view.bundle

    def load_context(self, context: Any) -> None:
        from songrec.core.io import load_model

        self.view = CatalogView(load_model(context.artifacts["bundle"]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """`model_input` is a DataFrame when MLflow calls (it converts dicts and lists first);
        called directly, a dict of lists or a list of dicts works as well."""
        if self.view is None:
            raise RuntimeError("the bundle is not loaded")
        bundle = self.view.bundle
        task, k = read_params(params)
        cap = read_max_per_artist(params)
        rows = split_rows(input_frame(model_input, bundle.numeric_features), bundle)
        if task == "recommend":
            answer = self.view.recommend(
                self.view.resolve(rows.catalog_ids()),
                feature_rows(rows.features, bundle.numeric_features),
                k,
                cap,
            )
            return recommendations_frame(answer)
        tracks = rows.model_inputs(bundle)
        if task == "genre":
            return bundle.predict_genre(tracks).reset_index(drop=True)
        return pd.DataFrame({"popularity": bundle.predict_popularity(tracks)})


def read_params(params: dict[str, Any] | None) -> tuple[str, int]:
    """The task and k, checked (MLflow fills in the signature's defaults and checks the types;
    a direct call may leave them out)."""
    params = params or {}
    task = params.get("task")
    task = "recommend" if task is None else task
    if task not in TASKS:
        raise InvalidModelInput(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    if task != "recommend":
        return str(task), DEFAULT_K  # k is not read
    k = params.get("k")
    k = DEFAULT_K if k is None else k
    if isinstance(k, bool) or not isinstance(k, Integral) or not 1 <= int(k) <= MAX_K:
        raise InvalidModelInput(f"k must be a whole number from 1 to {MAX_K}; got {k!r}")
    return str(task), int(k)


def read_max_per_artist(params: dict[str, Any] | None) -> int | None:
    """The diversity setting, checked: 1 to PAGE, or None (the model's default)."""
    cap = (params or {}).get("max_per_artist")
    if cap is None:
        return None
    if isinstance(cap, bool) or not isinstance(cap, Integral) or not 1 <= int(cap) <= PAGE:
        raise InvalidModelInput(f"max_per_artist must be a whole number from 1 to {PAGE}; got {cap!r}")
    return int(cap)


def recommendations_frame(answer: RecommendAnswer) -> pd.DataFrame:
    """The recommended tracks as a frame: one row per track, best first, typed also when empty."""
    frame = pd.DataFrame(answer.tracks, columns=list(RECOMMENDATION_COLUMNS))
    return frame.astype({"rank": np.int64, "score": np.float64})


# --------------------------------------------------------------------------- the input


def input_frame(model_input: object, numeric_features: Sequence[str]) -> pd.DataFrame:
    """The input as one row per track: a DataFrame as it is, a dict of lists as columns, a
    list of dicts as records. Fails on anything else and on an input without rows."""
    if isinstance(model_input, pd.DataFrame):
        frame = model_input
    elif isinstance(model_input, dict):
        values = list(model_input.values())
        scalars = all(not _is_list(value) for value in values)
        frame = _frame(lambda: pd.DataFrame([model_input]) if scalars else pd.DataFrame(model_input))
    elif isinstance(model_input, list) and all(isinstance(row, dict) for row in model_input):
        frame = pd.DataFrame(model_input)
    else:
        raise InvalidModelInput(
            f"cannot read a {type(model_input).__name__} as tracks: give a pandas DataFrame, a dict of"
            " lists (one list per column) or a list of dicts (one dict per track)"
        )
    frame = _expand_lists(frame).reset_index(drop=True)
    if frame.empty:
        raise InvalidModelInput(
            "the input has no tracks: give at least one row with a track_id from the catalog or with"
            f" all of the numeric features ({', '.join(numeric_features)}). Columns the model's"
            " signature does not name are dropped before the model reads the input."
        )
    return frame


def _is_list(value: object) -> bool:
    return isinstance(value, list | tuple | np.ndarray | pd.Series)


def _frame(build: Any) -> pd.DataFrame:
    try:
        frame: pd.DataFrame = build()
    except ValueError as exc:
        raise InvalidModelInput(
            f"the lists of a dict of lists must all have the same length ({exc})"
        ) from exc
    return frame


def _expand_lists(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame whose cells hold lists, as MLflow makes of a dict of string lists (one row of
    lists), back as one row per track. Lists in a frame of several rows are an error."""
    listed = [
        column
        for column in frame.columns
        if frame[column].dtype == object and frame[column].map(_is_list).any()
    ]
    if not listed:
        return frame
    if len(frame) != 1:
        raise InvalidModelInput(
            f"the cells of column(s) {', '.join(map(str, listed))} hold lists: give one track per row,"
            " or one list per column (a dict of lists)"
        )
    row = frame.iloc[0]
    return _frame(lambda: pd.DataFrame({column: row[column] for column in frame.columns}))


@dataclass(frozen=True)
class PlaylistRows:
    """The input's rows, checked: each is a catalog track (`known`) or a track by its features."""

    track_ids: list[str | None]  # per input row: its track_id, if any
    known: np.ndarray  # per input row: True when the catalog knows its track_id
    positions: np.ndarray  # per input row: its catalog position, -1 for a track by its features
    features: pd.DataFrame | None  # the tracks by their features (numeric features, track_artist),
    # indexed by their input row; None when there are none

    def catalog_ids(self) -> list[str]:
        """The track ids the catalog knows, in the input's order (repeats included)."""
        return [str(self.track_ids[row]) for row in np.flatnonzero(self.known)]

    def model_inputs(self, bundle: SongrecBundle) -> pd.DataFrame:
        """The rows the genre and popularity models read, one per input row, in the input's order."""
        known = np.flatnonzero(self.known)
        catalog = bundle.catalog.iloc[self.positions[known]].set_axis(known)
        parts = [part for part in (catalog, self.features) if part is not None and not part.empty]
        tracks = pd.concat(parts) if len(parts) > 1 else parts[0]
        return tracks.sort_index().reset_index(drop=True)


def split_rows(frame: pd.DataFrame, bundle: SongrecBundle) -> PlaylistRows:
    """Catalog tracks and tracks by their features; fails, naming them, on rows that are neither
    (an unknown id without all features, a row without an id that misses features) and on
    feature values that are not finite numbers."""
    numeric = list(bundle.numeric_features)
    values: dict[str, np.ndarray] = {}
    invalid: list[tuple[str, int, object]] = []
    for name in numeric:
        if name in frame:
            values[name], bad = _numbers(frame[name])
            invalid += [(name, int(row), _plain(frame[name].iloc[row])) for row in np.flatnonzero(bad)]
        else:
            values[name] = np.full(len(frame), np.nan)
    if invalid:
        shown = "; ".join(f"{name} in row {row}: {value!r}" for name, row, value in invalid[:_LISTED])
        raise InvalidModelInput(
            f"numeric features must be finite numbers (or missing for a track given by its id): {shown}"
            + _more(len(invalid))
        )
    track_ids = _track_ids(frame)
    lookup = pd.Index(["" if track_id is None else track_id for track_id in track_ids], dtype=object)
    positions = bundle.track_index.get_indexer(lookup).astype(np.int64)
    known = positions >= 0
    given = np.column_stack([~np.isnan(values[name]) for name in numeric])
    complete = given.all(axis=1)
    unusable = np.flatnonzero(~known & ~complete)
    if unusable.size:
        raise InvalidModelInput(_unusable_message(unusable, track_ids, given, numeric, len(frame)))
    by_features = np.flatnonzero(~known)
    features = None
    if by_features.size:
        features = pd.DataFrame({name: values[name][by_features] for name in numeric}, index=by_features)
        artists = frame["track_artist"].iloc[by_features] if "track_artist" in frame else None
        features["track_artist"] = (
            [a if isinstance(a, str) else None for a in artists] if artists is not None else None
        )
    return PlaylistRows(track_ids=track_ids, known=known, positions=positions, features=features)


def _track_ids(frame: pd.DataFrame) -> list[str | None]:
    if "track_id" not in frame:
        return [None] * len(frame)
    ids: list[str | None] = []
    for value in frame["track_id"].tolist():
        missing = value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA
        text = None if missing else str(value)
        ids.append(text if text and text.strip() else None)
    return ids


def _numbers(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column as floats (NaN where missing), and where it holds something that is not a finite
    number (text, a bool, infinity)."""
    missing = column.isna().to_numpy()
    if is_numeric_dtype(column) and not is_bool_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, ~missing & ~np.isfinite(values)
    values = np.full(len(column), np.nan)
    bad = np.zeros(len(column), dtype=bool)
    for row, value in enumerate(column.tolist()):
        if missing[row]:
            continue
        if isinstance(value, Real) and not isinstance(value, bool | np.bool_) and math.isfinite(value):
            values[row] = float(value)
        else:
            bad[row] = True
    return values, bad


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds (so a message shows inf, not np.float64(inf))."""
    return value.item() if isinstance(value, np.generic) else value


def _unusable_message(
    rows: np.ndarray, track_ids: Sequence[str | None], given: np.ndarray, numeric: Sequence[str], total: int
) -> str:
    unknown = list(dict.fromkeys(track_ids[row] for row in rows if track_ids[row] is not None))
    parts = [
        f"{len(rows)} of {total} input rows cannot be used: each row needs a track_id the catalog"
        f" knows, or all of the numeric features ({', '.join(numeric)})"
    ]
    if unknown:
        shown = ", ".join(repr(track_id) for track_id in unknown[:_LISTED])
        parts.append(f"track ids not in the catalog: {shown}{_more(len(unknown))}")
    partial = [row for row in rows if given[row].any()]
    if partial:
        shown = "; ".join(
            f"row {row} misses {', '.join(n for n, ok in zip(numeric, given[row], strict=True) if not ok)}"
            for row in partial[:_LISTED]
        )
        parts.append(f"rows with some features but not all: {shown}{_more(len(partial))}")
    empty = [int(row) for row in rows if track_ids[row] is None and not given[row].any()]
    if empty:
        shown = ", ".join(map(str, empty[:_LISTED]))
        parts.append(f"rows with neither a track_id nor features: {shown}{_more(len(empty))}")
    return "; ".join(parts)


def _more(count: int) -> str:
    return f" and {count - _LISTED} more" if count > _LISTED else ""
