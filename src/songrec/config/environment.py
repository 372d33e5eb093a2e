"""The environment: the one place songrec reads its endpoints, secrets and switches.

Everything that is not in git comes from here: where MLflow runs (any server, or DagsHub), the
S3 endpoint, the event store, the admin token, the incoming folder, the alert webhook, the DVC
remote, and the serving switches. `Environment.read()` is called once (by the
ConfigurationManager) and passed down; no other module reads a songrec setting from os.environ
(what else touches it passes the environment on to a child process, or feeds MLflow the
variables it reads itself). With nothing set, every field is empty and songrec runs on its
embedded defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from songrec.core.errors import ConfigError

ON = ("1", "true", "on", "yes")
OFF = ("0", "false", "off", "no")
DAGSHUB_KEYS = ("DAGSHUB_REPO_OWNER", "DAGSHUB_REPO_NAME", "DAGSHUB_USER_TOKEN")


@dataclass(frozen=True)
class TrackingServer:
    """An MLflow server the environment names: any server, or DagsHub's."""

    uri: str
    backend: str  # "server" or "dagshub"
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Environment:
    root: Path | None = None  # SONGREC_ROOT: the project, wherever the process starts
    tracking_server: TrackingServer | None = None
    dagshub_repo: str | None = None  # owner/name, when DagsHub is configured
    dagshub_user: str | None = None
    dagshub_token: str | None = field(default=None, repr=False)
    s3_endpoint_url: str | None = None  # AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL
    event_store_url: str | None = None  # SONGREC_EVENT_STORE_URL
    admin_token: str | None = field(default=None, repr=False)  # SONGREC_ADMIN_TOKEN
    labeler_token: str | None = field(default=None, repr=False)  # SONGREC_LABELER_TOKEN: POST /labels
    incoming_url: str | None = None  # SONGREC_INCOMING_URL
    alert_webhook_url: str | None = field(default=None, repr=False)  # SONGREC_ALERT_WEBHOOK_URL
    api_url: str | None = None  # SONGREC_API_URL: the API that retraining asks to reload
    stream_url: str | None = field(default=None, repr=False)  # SONGREC_STREAM_URL: the stream scorer's Redis
    dvc_remote_url: str | None = None  # SONGREC_DVC_REMOTE_URL
    airflow_home: Path | None = None  # SONGREC_AIRFLOW_HOME
    timings_file: Path | None = None  # SONGREC_TIMINGS_FILE: stage timings, for benchmarks
    batch_dir: Path | None = None  # SONGREC_BATCH_DIR: songrec batch's outputs, shared by writer and API
    dvc_experiment: str | None = None  # DVC_EXP_NAME: set by `dvc exp run` for its stages
    bundle: Path | None = None  # SONGREC_BUNDLE: serve this file, not the registry's champion
    event_logging: bool = True  # SONGREC_EVENT_LOGGING
    event_hold_seconds: float = 30.0  # SONGREC_EVENT_HOLD_SECONDS
    rate_limits: bool = True  # SONGREC_RATE_LIMITS=off: serve.rate_limits not enforced (benchmarks)

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> Environment:
        """The environment as songrec uses it; a bad value names the variable and the rule."""
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            return (env.get(name) or "").strip() or None

        def path(name: str) -> Path | None:
            value = text(name)
            return Path(value).expanduser() if value else None

        _refuse_placeholders(env)
        owner, repo, token = (text(name) for name in DAGSHUB_KEYS)
        return cls(
            root=path("SONGREC_ROOT"),
            tracking_server=_tracking_server(env),
            dagshub_repo=f"{owner}/{repo}" if owner and repo else None,
            dagshub_user=text("DAGSHUB_USER_NAME") or owner,
            dagshub_token=token,
            s3_endpoint_url=text("AWS_ENDPOINT_URL_S3") or text("AWS_ENDPOINT_URL"),
            event_store_url=text("SONGREC_EVENT_STORE_URL"),
            admin_token=text("SONGREC_ADMIN_TOKEN"),
            labeler_token=text("SONGREC_LABELER_TOKEN"),
            incoming_url=text("SONGREC_INCOMING_URL"),
            alert_webhook_url=text("SONGREC_ALERT_WEBHOOK_URL"),
            api_url=text("SONGREC_API_URL"),
            stream_url=text("SONGREC_STREAM_URL"),
            dvc_remote_url=text("SONGREC_DVC_REMOTE_URL"),
            airflow_home=path("SONGREC_AIRFLOW_HOME"),
            timings_file=path("SONGREC_TIMINGS_FILE"),
            batch_dir=path("SONGREC_BATCH_DIR"),
            dvc_experiment=text("DVC_EXP_NAME"),
            bundle=_bundle(text("SONGREC_BUNDLE")),
            event_logging=_switch(env, "SONGREC_EVENT_LOGGING", default=True),
            event_hold_seconds=_seconds(env, "SONGREC_EVENT_HOLD_SECONDS", default=30.0, most=3600.0),
            rate_limits=_switch(env, "SONGREC_RATE_LIMITS", default=True),
        )


# The secrets songrec reads (tokens, passwords, URLs that carry one). .env.example gives each a
# `change-me-...` value; a service started with one would run with a secret anyone can read.
SECRET_VARIABLES = (
    "SONGREC_ADMIN_TOKEN",
    "SONGREC_LABELER_TOKEN",
    "SONGREC_EVENT_STORE_URL",
    "SONGREC_STREAM_URL",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_URI",
    "DAGSHUB_USER_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
)
PLACEHOLDER = "change-me"


def _refuse_placeholders(env: Mapping[str, str]) -> None:
    placeholders = [name for name in SECRET_VARIABLES if PLACEHOLDER in (env.get(name) or "")]
    if placeholders:
        raise ConfigError(
            f"environment: {', '.join(placeholders)} still {'holds' if len(placeholders) == 1 else 'hold'} "
            "the placeholder of .env.example "
            f"({PLACEHOLDER}-...): set secrets of your own (e.g. `openssl rand -hex 32`)"
        )


def _tracking_server(env: Mapping[str, str]) -> TrackingServer | None:
    """MLFLOW_TRACKING_URI (with its basic-auth pair) wins; else DagsHub's endpoint; else None."""
    if env.get("MLFLOW_TRACKING_URI"):
        return TrackingServer(
            uri=env["MLFLOW_TRACKING_URI"],
            backend="server",
            username=env.get("MLFLOW_TRACKING_USERNAME"),
            password=env.get("MLFLOW_TRACKING_PASSWORD"),
        )
    dagshub = [env.get(name) for name in DAGSHUB_KEYS]
    if not any(dagshub):
        return None
    if not all(dagshub):
        missing = [name for name in DAGSHUB_KEYS if not env.get(name)]
        raise ConfigError(f"environment: DagsHub tracking needs {', '.join(missing)} too")
    owner, name, token = dagshub
    return TrackingServer(
        uri=f"https://dagshub.com/{owner}/{name}.mlflow",
        backend="dagshub",
        username=env.get("DAGSHUB_USER_NAME") or owner,
        password=token,
    )


def _bundle(raw: str | None) -> Path | None:
    if raw is None:
        return None
    path = Path(raw).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"environment: SONGREC_BUNDLE = {raw!r}: no such file")
    return path


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value not in ON + OFF:
        raise ConfigError(f"environment: {name} = {value!r}: must be one of {', '.join(ON + OFF)}")
    return value in ON


def _seconds(env: Mapping[str, str], name: str, default: float, most: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= most:  # also NaN
        raise ConfigError(f"environment: {name} = {raw!r}: must be a number of seconds from 0 to {most:g}")
    return value
