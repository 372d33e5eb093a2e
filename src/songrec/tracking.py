"""MLflow set-up, the registry and its aliases.

Where runs go is decided by the environment alone (config.TrackingConfig): MLFLOW_TRACKING_URI
(+ MLFLOW_TRACKING_USERNAME/PASSWORD) for any server; DAGSHUB_REPO_OWNER, DAGSHUB_REPO_NAME and
DAGSHUB_USER_TOKEN for DagsHub (its MLflow endpoint with basic auth, no dagshub client and no
network call before a run starts); otherwise a SQLite store and an artifact folder inside the
project. Nothing here runs at import time.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from songrec.config import TrackingConfig
from songrec.errors import TrackingError

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION_TAG = "previous_champion"

# What a pyfunc model of songrec needs besides songrec itself (explicit: inferring costs ~15 s).
MODEL_REQUIREMENTS = ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "joblib", "pyarrow")


def point_at(uri: str) -> None:
    """Set MLflow's tracking and registry URI for this process only.

    mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI (and the registry's) into
    os.environ; a ConfigurationManager created later in the same process (an Airflow task, a
    test, the API) would then take it for the user's choice of server. Undo that.
    """
    import mlflow

    before = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def configure(config: TrackingConfig) -> None:
    """Point MLflow at the configured store; create the experiment if it is new."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if config.backend == "dagshub" and config.password:
        # DagsHub's MLflow endpoint takes basic auth: user name and token.
        os.environ["MLFLOW_TRACKING_USERNAME"] = config.username or ""
        os.environ["MLFLOW_TRACKING_PASSWORD"] = config.password
    if config.backend == "local":
        Path(config.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    point_at(config.uri)
    try:
        if mlflow.get_experiment_by_name(config.experiment) is None:
            mlflow.create_experiment(config.experiment, artifact_location=config.artifact_location)
        mlflow.set_experiment(config.experiment)
    except Exception as exc:
        raise TrackingError(
            f"cannot use MLflow at {redact(config.uri)}: {type(exc).__name__}: {exc}"
        ) from exc


def redact(uri: str) -> str:
    """A URI safe to print: credentials inside it are masked."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri


def client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def version_by_alias(name: str, alias: str) -> Any | None:
    """The model version behind an alias, or None if the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or (
            "not found" in str(exc).lower() or "does not exist" in str(exc).lower()
        ):
            return None
        raise


def set_alias(name: str, alias: str, version: str | int) -> None:
    client().set_registered_model_alias(name, alias, str(version))


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
