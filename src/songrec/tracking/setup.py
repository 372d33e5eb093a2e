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

from songrec.config.stage_configs import TrackingConfig
from songrec.core.errors import TrackingError

log = logging.getLogger(__name__)

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"


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


def configure(config: TrackingConfig, *, create_experiment: bool = True) -> None:
    """Point MLflow at the configured store; with `create_experiment` (to log runs) also create
    the experiment if it is new and make it the active one, else only read the registry."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if config.backend == "dagshub" and config.password:
        # DagsHub's MLflow endpoint takes basic auth: user name and token.
        os.environ["MLFLOW_TRACKING_USERNAME"] = config.username or ""
        os.environ["MLFLOW_TRACKING_PASSWORD"] = config.password
    if not create_experiment:
        # A server logs to a file, not a terminal: no download progress bars.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        point_at(config.uri)
        return
    if config.backend == "local":
        Path(config.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    point_at(config.uri)
    try:
        if mlflow.get_experiment_by_name(config.experiment) is None:
            mlflow.create_experiment(
                config.experiment,
                artifact_location=config.artifact_location,
                # MLflow's UI opens an experiment of this kind on its runs (not on traces)
                tags={EXPERIMENT_KIND_TAG: "custom_model_development"},
            )
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


def mlflow_client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()
