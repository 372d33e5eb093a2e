"""The environment is read in one place, checked, and reaches the configs that need it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from songrec.config.environment import Environment
from songrec.config.manager import ConfigurationManager
from songrec.core.errors import ConfigError
from songrec.orchestration.dvc_remote import remote_commands
from tests.conftest import ROOT


def test_nothing_set_means_the_embedded_defaults() -> None:
    environment = Environment.read({})
    assert environment == Environment()
    assert environment.event_logging and environment.event_hold_seconds == 30.0
    assert environment.tracking_server is None and environment.bundle is None


def test_serving_switches_are_checked_and_reach_the_serve_config(project: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pkl"
    bundle.write_bytes(b"x")
    environ = {
        "SONGREC_EVENT_LOGGING": "off",
        "SONGREC_EVENT_HOLD_SECONDS": "0",
        "SONGREC_BUNDLE": str(bundle),
        "SONGREC_ADMIN_TOKEN": "secret",
    }
    serve = ConfigurationManager(project, environ=environ).serve()
    assert (serve.event_logging, serve.event_hold_seconds) == (False, 0.0)
    assert serve.bundle_file == bundle.resolve() and serve.admin_token == "secret"
    assert serve.batch_dir == project / "data" / "batch"  # config batch.output_dir, unset
    shared = tmp_path / "shared-batch"
    manager = ConfigurationManager(project, environ={"SONGREC_BATCH_DIR": str(shared)})
    assert manager.serve().batch_dir == manager.batch().output_dir == shared
    with pytest.raises(ConfigError, match="SONGREC_EVENT_LOGGING = 'maybe'"):
        Environment.read({"SONGREC_EVENT_LOGGING": "maybe"})
    for wrong in ("-1", "3601", "nan", "soon"):
        with pytest.raises(ConfigError, match="SONGREC_EVENT_HOLD_SECONDS"):
            Environment.read({"SONGREC_EVENT_HOLD_SECONDS": wrong})
    with pytest.raises(ConfigError, match="no such file"):
        Environment.read({"SONGREC_BUNDLE": str(tmp_path / "missing.joblib")})


def test_endpoints_reach_the_configs_that_use_them(project: Path) -> None:
    environ = {
        "SONGREC_EVENT_STORE_URL": "postgresql+psycopg://u@127.0.0.1/events",
        "SONGREC_INCOMING_URL": "s3://bucket/incoming",
        "SONGREC_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
    }
    manager = ConfigurationManager(project, environ=environ)
    assert (
        manager.serve().event_store_url
        == manager.monitor().event_store_url
        == environ["SONGREC_EVENT_STORE_URL"]
    )
    assert manager.evaluate().event_store_url == environ["SONGREC_EVENT_STORE_URL"]
    assert manager.retrain().incoming == manager.monitor().incoming == "s3://bucket/incoming"
    assert manager.monitor().alert_webhook_url == environ["SONGREC_ALERT_WEBHOOK_URL"]
    assert manager.retrain().s3_endpoint_url == "http://127.0.0.1:9000"


def test_the_dvc_remote_follows_the_environment() -> None:
    described, commands = remote_commands(
        Environment.read({"SONGREC_DVC_REMOTE_URL": "s3://b/p", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"})
    )
    assert described == "s3://b/p (endpoint http://127.0.0.1:9000)"
    assert commands[-1][-2:] == ["endpointurl", "http://127.0.0.1:9000"]
    dagshub = Environment.read(
        {"DAGSHUB_REPO_OWNER": "me", "DAGSHUB_REPO_NAME": "songs", "DAGSHUB_USER_TOKEN": "t0ken"}
    )
    described, commands = remote_commands(dagshub)
    assert described == "DagsHub https://dagshub.com/me/songs.dvc"
    assert commands[-1][-2:] == ["password", "t0ken"]
    described, commands = remote_commands(Environment.read({}))
    assert "local folder" in described and commands == [["dvc", "remote", "default", "--local", "--unset"]]


def test_no_other_module_reads_a_songrec_variable() -> None:
    """The environment has one home: no module but config/environment.py names a SONGREC_ variable
    in a call that reads the environment."""
    readers = []
    for path in sorted((ROOT / "src" / "songrec").rglob("*.py")):
        if path.name == "environment.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                source, keys = ast.unparse(node.func), node.args
            elif isinstance(node, ast.Subscript):
                source, keys = ast.unparse(node.value), [node.slice]
            else:
                continue
            names = [k.value for k in keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            if ("environ" in source or "getenv" in source) and any(n.startswith("SONGREC_") for n in names):
                readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not readers, f"songrec settings read outside config/environment.py: {readers}"


@pytest.mark.parametrize(
    "variables",
    [
        {"SONGREC_ADMIN_TOKEN": "change-me-api-admin-token"},
        {"SONGREC_EVENT_STORE_URL": "postgresql+psycopg://songrec:change-me-events-db@postgres:5432/events"},
    ],
)
def test_a_placeholder_secret_of_env_example_is_refused_by_name(variables: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=f"{next(iter(variables))} still holds? the placeholder"):
        Environment.read(variables)
