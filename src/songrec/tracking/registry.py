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
    """Inputs: optional track_id, artist and numeric features (integers as the data contract
    says: key, mode, duration_ms, year); params: task and k."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    columns: list[Any] = [
        ColSpec("string", "track_id", required=False),
        ColSpec("string", "track_artist", required=False),
    ]
    columns += [
        ColSpec("long" if name in integer_features else "double", name, required=False)
        for name in numeric_features
    ]
    params = ParamSchema([ParamSpec("task", "string", "recommend"), ParamSpec("k", "long", 10)])
    return ModelSignature(inputs=Schema(columns), params=params)
