"""The MLflow model as a caller meets it: logged and registered for real in a local store, loaded
with mlflow.pyfunc.load_model("models:/songrec@champion"), and called with the input forms
MLflow documents (a DataFrame, a dict of lists, a list of dicts), through MLflow's signature
enforcement. Bad input fails with a message that names the problem."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, get_model_info, validate_schema
from mlflow.pyfunc import PyFuncModel, scoring_server
from mlflow.types.schema import AnyType

from songrec.config.manager import ConfigurationManager
from songrec.core.io import load_model
from songrec.models import mlflow_model
from songrec.models.bundle import SongrecBundle
from songrec.models.catalog_view import CatalogView, FeatureRow
from songrec.models.pyfunc import (
    MAX_K,
    RECOMMENDATION_COLUMNS,
    InvalidModelInput,
    SongrecPyfunc,
    recommendations_frame,
)
from songrec.stages.evaluate import example_playlist
from songrec.tracking.registry import CHAMPION, MODEL_REQUIREMENTS, model_signature
from songrec.tracking.setup import point_at

UNKNOWN = ["0000000000000000000000", "zzzzzzzzzzzzzzzzzzzzzz"]
MODEL_URI = f"models:/songrec@{CHAMPION}"


@pytest.fixture(scope="module")
def bundle_file(trained_project: Path) -> Path:
    return ConfigurationManager(trained_project).train().bundle


@pytest.fixture(scope="module")
def bundle(bundle_file: Path) -> SongrecBundle:
    loaded: SongrecBundle = load_model(bundle_file)
    return loaded


@pytest.fixture(scope="module")
def view(bundle: SongrecBundle) -> CatalogView:
    return CatalogView(bundle)


@pytest.fixture(scope="module")
def integers(trained_project: Path) -> frozenset[str]:
    return ConfigurationManager(trained_project).evaluate().integer_features


@pytest.fixture(scope="module")
def signature(bundle: SongrecBundle, integers: frozenset[str]) -> ModelSignature:
    return model_signature(bundle.numeric_features, integers)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def logged(
    tmp_path_factory: pytest.TempPathFactory,
    bundle_file: Path,
    bundle: SongrecBundle,
    signature: ModelSignature,
) -> tuple[PyFuncModel, list[str]]:
    """The bundle logged as evaluate.log_run logs it, registered, made champion, and loaded back
    the way docs/pipeline.md shows; and MLflow's warnings while logging."""
    folder = tmp_path_factory.mktemp("mlflow")
    point_at(f"sqlite:///{folder / 'mlflow.db'}")  # as configure does: no MLFLOW_* left in os.environ
    experiment = mlflow.create_experiment("songrec", artifact_location=(folder / "artifacts").as_uri())
    collect = Collect()
    logging.getLogger("mlflow").addHandler(collect)
    try:
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(mlflow_model.__file__)),
                artifacts={"bundle": str(bundle_file)},
                pip_requirements=list(MODEL_REQUIREMENTS),
                signature=signature,
                input_example=(example_playlist(bundle), {"task": "recommend", "k": 10}),
                registered_model_name="songrec",
            )
    finally:
        logging.getLogger("mlflow").removeHandler(collect)
    MlflowClient().set_registered_model_alias("songrec", CHAMPION, str(info.registered_model_version))
    return mlflow.pyfunc.load_model(MODEL_URI), collect.messages


@pytest.fixture(scope="module")
def model(logged: tuple[PyFuncModel, list[str]]) -> PyFuncModel:
    return logged[0]


# --------------------------------------------------------------------------- helpers


def playlist(bundle: SongrecBundle, size: int = 5) -> list[str]:
    """One artist's tracks: a playlist with a clear taste."""
    catalog = bundle.catalog
    artist = catalog["track_artist"].value_counts().index[0]
    return [str(t) for t in catalog.loc[catalog["track_artist"] == artist, "track_id"].head(size)]


def feature_row(
    bundle: SongrecBundle, integers: frozenset[str], position: int, **changes: object
) -> dict[str, Any]:
    """A catalog track given by its features, typed as JSON would carry it (ints for the
    integer features), with `changes` applied."""
    row = bundle.catalog.iloc[position]
    values: dict[str, Any] = {
        name: int(row[name]) if name in integers else float(row[name]) for name in bundle.numeric_features
    }
    values["track_artist"] = row["track_artist"] if isinstance(row["track_artist"], str) else None
    values.update(changes)
    return values


def expected(view: CatalogView, track_ids: list[str], rows: list[dict[str, Any]], k: int) -> pd.DataFrame:
    """What the API's CatalogView answers for the same playlist."""
    features = [FeatureRow([float(r[n]) for n in view.numeric_features], r.get("track_artist")) for r in rows]
    return recommendations_frame(view.recommend(view.resolve(track_ids), features, k))


def as_columns(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Records as a dict of lists (None where a record has no value)."""
    names = list(dict.fromkeys(name for record in records for name in record))
    return {name: [record.get(name) for record in records] for name in names}


def answer(model: PyFuncModel, data: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """The model's answer, which is always a DataFrame."""
    got = model.predict(data, params=params)
    assert isinstance(got, pd.DataFrame)
    return got


def input_error(model: PyFuncModel, data: Any, params: dict[str, Any] | None = None) -> str:
    """The message of the error the model raises; the error is a ValueError and an
    MlflowException with error code INVALID_PARAMETER_VALUE (HTTP 400 when served)."""
    with pytest.raises(InvalidModelInput) as raised:
        model.predict(data, params=params)
    error = raised.value
    assert isinstance(error, ValueError) and isinstance(error, MlflowException)
    assert error.error_code == "INVALID_PARAMETER_VALUE" and error.get_http_status_code() == 400
    return str(error)


# --------------------------------------------------------------------------- input forms


def test_the_three_input_forms_give_the_same_recommendations(
    model: PyFuncModel, view: CatalogView, bundle: SongrecBundle, integers: frozenset[str]
) -> None:
    ids = playlist(bundle)
    # By id only: a dict of string lists is what MLflow turns into one row of lists.
    by_id = expected(view, ids, [], k=12)
    assert not by_id.empty and set(by_id["track_id"]).isdisjoint(ids)
    records = [{"track_id": track_id} for track_id in ids]
    for data in (pd.DataFrame(records), {"track_id": ids}, records):
        got = answer(model, data, params={"k": 12})
        pd.testing.assert_frame_equal(got, by_id, check_exact=True)
    # Ids and tracks by their features, mixed: integer features with missing values.
    rows = [feature_row(bundle, integers, 10), feature_row(bundle, integers, 20, track_artist=None)]
    mixed = [*records, *rows]
    want = expected(view, ids, rows, k=12)
    assert not want.equals(by_id)
    for data in (pd.DataFrame(mixed), as_columns(mixed), mixed):
        got = answer(model, data, params={"task": "recommend", "k": 12})
        pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_called_directly_the_pyfunc_reads_the_same_forms(
    bundle_file: Path, view: CatalogView, bundle: SongrecBundle, integers: frozenset[str]
) -> None:
    model = SongrecPyfunc()
    model.load_context(SimpleNamespace(artifacts={"bundle": str(bundle_file)}))
    ids = playlist(bundle)
    rows = [feature_row(bundle, integers, 10)]
    mixed = [*({"track_id": track_id} for track_id in ids), *rows]
    want = expected(view, ids, rows, k=10)
    for data in (pd.DataFrame(mixed), as_columns(mixed), mixed):
        pd.testing.assert_frame_equal(model.predict(None, data, None), want, check_exact=True)
    with pytest.raises(InvalidModelInput, match="cannot read a str"):
        model.predict(None, "not a playlist", None)


def test_tracks_given_only_by_their_features(
    model: PyFuncModel, view: CatalogView, bundle: SongrecBundle, integers: frozenset[str]
) -> None:
    rows = [feature_row(bundle, integers, 30), feature_row(bundle, integers, 40)]
    want = expected(view, [], rows, k=10)
    assert len(want) == 10
    for data in (rows, as_columns(rows), pd.DataFrame(rows)):  # int64 integer features
        pd.testing.assert_frame_equal(answer(model, data), want, check_exact=True)
    # A catalog slice (the data's own dtypes) works as well.
    catalog = bundle.catalog.iloc[[30, 40]][[*bundle.numeric_features, "track_artist"]]
    pd.testing.assert_frame_equal(answer(model, catalog), want, check_exact=True)


def test_an_unknown_id_with_all_features_is_a_track_by_its_features(
    model: PyFuncModel, view: CatalogView, bundle: SongrecBundle, integers: frozenset[str]
) -> None:
    row = feature_row(bundle, integers, 50)
    want = expected(view, [], [row], k=10)
    got = answer(model, [{**row, "track_id": UNKNOWN[0]}])
    pd.testing.assert_frame_equal(got, want, check_exact=True)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("form", ["frame", "columns", "records"])
def test_unknown_ids_are_an_error_that_names_them(
    model: PyFuncModel, bundle: SongrecBundle, form: str
) -> None:
    ids = playlist(bundle, size=3)
    records = [{"track_id": track_id} for track_id in [*ids, *UNKNOWN]]
    data: Any = {"frame": pd.DataFrame(records), "columns": as_columns(records), "records": records}[form]
    message = input_error(model, data)
    assert "2 of 5 input rows cannot be used" in message
    assert all(repr(track_id) in message for track_id in UNKNOWN)
    assert not any(track_id in message for track_id in ids)
    # A playlist of unknown ids only: an error, never the catalog's first tracks.
    message = input_error(model, {"track_id": UNKNOWN})
    assert "2 of 2 input rows" in message and all(track_id in message for track_id in UNKNOWN)


def test_rows_without_a_known_id_or_all_features_name_what_they_miss(
    model: PyFuncModel, bundle: SongrecBundle, integers: frozenset[str]
) -> None:
    good = feature_row(bundle, integers, 10)
    partial = {k: v for k, v in feature_row(bundle, integers, 20).items() if k not in ("key", "year")}
    message = input_error(model, [good, partial, {"track_artist": "Nobody"}])
    assert "2 of 3 input rows cannot be used" in message
    assert "row 1 misses key, year" in message
    assert "rows with neither a track_id nor features: 2" in message
    assert all(name in message for name in bundle.numeric_features)  # the rule lists the features
    # An unknown id with some features: named, and what its row misses too.
    message = input_error(model, [{**partial, "track_id": UNKNOWN[1]}])
    assert repr(UNKNOWN[1]) in message and "row 0 misses key, year" in message


@pytest.mark.parametrize(
    ("change", "named"),
    [({"key": "C#"}, "key in row 0: 'C#'"), ({"danceability": math.inf}, "danceability in row 0: inf")],
)
def test_feature_values_must_be_finite_numbers(
    model: PyFuncModel, bundle: SongrecBundle, integers: frozenset[str], change: dict[str, object], named: str
) -> None:
    message = input_error(model, [feature_row(bundle, integers, 10, **change)])
    assert "must be finite numbers" in message and named in message


@pytest.mark.parametrize("data", [pd.DataFrame(), {"track_id": []}, [], {"not_a_column": ["a", "b"]}])
def test_an_empty_input_is_an_error(model: PyFuncModel, data: Any) -> None:
    assert "the input has no tracks" in input_error(model, data)


def test_a_wrong_task_or_k_is_an_error(model: PyFuncModel, bundle: SongrecBundle) -> None:
    ids = {"track_id": playlist(bundle)}
    message = input_error(model, ids, {"task": "mood"})
    assert "unknown task 'mood'" in message and "recommend, genre, popularity" in message
    for k in (0, -3, MAX_K + 1):
        assert f"k must be a whole number from 1 to {MAX_K}; got {k}" in input_error(model, ids, {"k": k})
    with pytest.raises(MlflowException, match="Invalid parameters"):  # MLflow checks the type first
        model.predict(ids, params={"k": 2.5})
    assert len(model.predict(ids, params={"k": 1})) == 1
    assert len(model.predict(ids, params={"k": MAX_K})) == min(MAX_K, len(bundle) - len(ids["track_id"]))


# --------------------------------------------------------------------------- outputs


def test_evaluates_input_example_passes_the_check_mlflow_runs_when_logging(
    logged: tuple[PyFuncModel, list[str]],
) -> None:
    """log_model loads the model and predicts its input example; a failure is only a warning."""
    _, warnings = logged
    assert not [w for w in warnings if "input example" in w.lower()], warnings


def test_the_signature_records_the_outputs_and_the_answer_matches_them(
    model: PyFuncModel, signature: ModelSignature, bundle: SongrecBundle, integers: frozenset[str]
) -> None:
    recorded = get_model_info(MODEL_URI).signature
    assert recorded is not None and recorded.outputs is not None
    assert recorded.outputs == signature.outputs == model.metadata.get_output_schema()
    assert recorded.outputs.input_names() == list(RECOMMENDATION_COLUMNS)
    assert recorded.inputs == signature.inputs and recorded.params == signature.params
    kinds = {spec.name: spec.type for spec in recorded.inputs.inputs}
    assert {name for name, kind in kinds.items() if isinstance(kind, AnyType)} == set(integers) & set(
        bundle.numeric_features
    )
    got = answer(model, {"track_id": playlist(bundle)}, params={"k": 7})
    assert list(got.columns) == recorded.outputs.input_names() and len(got) == 7
    for spec in recorded.outputs.inputs:
        assert got[spec.name].dtype == spec.type.to_pandas(), spec.name
    validate_schema(got, recorded.outputs)  # MLflow's own check of a frame against a schema
    assert got["rank"].tolist() == list(range(1, 8))
    assert got["score"].is_monotonic_decreasing


def test_genre_and_popularity_answer_one_row_per_input_row_in_order(
    model: PyFuncModel, bundle: SongrecBundle, integers: frozenset[str]
) -> None:
    a, b = playlist(bundle, size=2)
    row = feature_row(bundle, integers, 10)
    data = [{"track_id": a}, row, {"track_id": b}, {"track_id": a}]
    tracks = pd.concat(
        [
            bundle.catalog_tracks([a]),
            pd.DataFrame([row]),
            bundle.catalog_tracks([b]),
            bundle.catalog_tracks([a]),
        ],
        ignore_index=True,
    )
    popularity = answer(model, data, params={"task": "popularity"})
    assert list(popularity.columns) == ["popularity"]
    np.testing.assert_allclose(popularity["popularity"], bundle.predict_popularity(tracks))
    genre = answer(model, data, params={"task": "genre"})
    assert list(genre.columns) == ["genre", *(f"p_{g}" for g in bundle.genres)]
    pd.testing.assert_frame_equal(genre, bundle.predict_genre(tracks).reset_index(drop=True))
    assert genre.iloc[0].equals(genre.iloc[3]) and not genre.iloc[0].equals(genre.iloc[1])
    assert "track ids not in the catalog" in input_error(
        model, [*data, {"track_id": UNKNOWN[0]}], {"task": "genre"}
    )


# --------------------------------------------------------------------------- served


def test_mlflow_models_serve_answers_and_refuses_with_400(
    model: PyFuncModel, view: CatalogView, bundle: SongrecBundle, integers: frozenset[str]
) -> None:
    """The scoring server's request handling (`mlflow models serve`), without the HTTP server."""
    ids = playlist(bundle)
    rows = [feature_row(bundle, integers, 10)]
    want = expected(view, ids, rows, k=5)["track_id"].tolist()
    schema = model.metadata.get_input_schema()
    bodies = [
        {"dataframe_records": [*({"track_id": t} for t in ids), *rows], "params": {"k": 5}},
        {"inputs": {"track_id": ids}, "params": {"k": 5}},
    ]
    for body in bodies:
        response = scoring_server.invocations(json.dumps(body), "application/json", model, schema)
        assert response.status == 200, response.response
        predictions = json.loads(response.response)["predictions"]
        if body is bodies[0]:
            assert [p["track_id"] for p in predictions] == want
        else:
            assert [p["track_id"] for p in predictions] == expected(view, ids, [], k=5)["track_id"].tolist()
    bad = json.dumps({"inputs": {"track_id": [*ids, UNKNOWN[0]]}})
    with pytest.raises(MlflowException) as raised:
        scoring_server.invocations(bad, "application/json", model, schema)
    assert raised.value.get_http_status_code() == 400 and UNKNOWN[0] in raised.value.message
