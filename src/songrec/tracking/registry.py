"""The model registry: the champion and challenger aliases, loading a registered bundle, and the
signature a logged songrec model declares."""

from __future__ import annotations

from typing import Any

from songrec.tracking.setup import mlflow_client

CHAMPION = "champion"


CHALLENGER = "challenger"


PREVIOUS_CHAMPION_TAG = "previous_champion"


# What a pyfunc model of songrec needs besides songrec itself (explicit: inferring them is slow).
MODEL_REQUIREMENTS = ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "joblib", "pyarrow")


def version_by_alias(name: str, alias: str) -> Any | None:
    """The model version behind an alias, or None if the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or (
            "not found" in str(exc).lower() or "does not exist" in str(exc).lower()
        ):
            return None
        raise


def set_alias(name: str, alias: str, version: str | int) -> None:
    mlflow_client().set_registered_model_alias(name, alias, str(version))


def load_bundle(model_uri: str) -> Any:
    """The SongrecBundle inside a logged or registered pyfunc model."""
    import mlflow

    model = mlflow.pyfunc.load_model(model_uri)
    return model.unwrap_python_model().bundle


def model_signature(numeric_features: tuple[str, ...], integer_features: frozenset[str]) -> Any:
    """The signature of a logged songrec model (models/pyfunc.py).

    Inputs, all optional (a row is a catalog track by its id, or a track by its features):
    track_id and track_artist (strings), the numeric features as doubles, except the integer
    ones (key, mode, duration_ms, year: `integer_features`), which are `any`. MLflow's "long"
    rejects a column with missing values, which a playlist mixing ids and feature rows always
    has, and its "double" rejects an int64 column, which feature rows built from the data have;
    the model itself checks that every feature value is a finite number.
    Outputs: the recommend task's frame (models.pyfunc.RECOMMENDATION_TYPES). MLflow records one
    output schema per model and does not enforce it; the genre and popularity tasks answer
    other columns. Params: task ("recommend") and k (10)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

    from songrec.models.pyfunc import DEFAULT_K, OPTIONAL_OUTPUTS, RECOMMENDATION_TYPES

    columns: list[Any] = [
        ColSpec("string", "track_id", required=False),
        ColSpec("string", "track_artist", required=False),
    ]
    columns += [
        ColSpec(AnyType() if name in integer_features else "double", name, required=False)
        for name in numeric_features
    ]
    outputs = Schema(
        [
            ColSpec(dtype, name, required=name not in OPTIONAL_OUTPUTS)
            for name, dtype in RECOMMENDATION_TYPES.items()
        ]
    )
    params = ParamSchema(
        [
            ParamSpec("task", "string", "recommend"),
            ParamSpec("k", "long", DEFAULT_K),
            ParamSpec("max_per_artist", "long", None),  # None: the model's default
        ]
    )
    return ModelSignature(inputs=Schema(columns), outputs=outputs, params=params)
