"""ConfigurationManager: typed configs, and errors that name file, key, value and rule."""

from __future__ import annotations

import os
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
import yaml

from songrec.config.manager import ConfigurationManager
from songrec.core.errors import ConfigError
from tests.conftest import edit_yaml


def test_stage_configs_are_frozen_and_typed(project: Path) -> None:
    manager = ConfigurationManager(project)
    train = manager.train()
    assert train.recommender.name == "hybrid"
    assert train.catalog == project / "data/processed/catalog.parquet"
    assert manager.validate().schema.genres == ("edm", "latin", "pop", "r&b", "rap", "rock")
    with pytest.raises(FrozenInstanceError):
        train.seed = 1  # type: ignore[misc]


def test_unknown_recommender_names_file_key_value_and_choices(project: Path) -> None:
    edit_yaml(project / "params.yaml", {"train.recommender.name": "deep-magic"})
    with pytest.raises(ConfigError) as error:
        ConfigurationManager(project)
    message = str(error.value)
    assert "params.yaml" in message
    assert "train.recommender.name" in message
    assert "'deep-magic'" in message
    assert "hybrid, reference" in message


def test_malformed_yaml_names_file_and_line(project: Path) -> None:
    path = project / "params.yaml"
    path.write_text(path.read_text() + "\ntrain: [unclosed\n")
    with pytest.raises(ConfigError, match=r"params.yaml: malformed YAML at line \d+"):
        ConfigurationManager(project)


def test_missing_key_is_named(project: Path) -> None:
    path = project / "config" / "config.yaml"
    path.write_text(path.read_text().replace("  raw_dir: data/raw\n", ""))
    with pytest.raises(ConfigError, match=r"config/config.yaml: missing key ingest.raw_dir"):
        ConfigurationManager(project)


@pytest.mark.parametrize(
    ("file", "key", "words"),
    [
        ("config/config.yaml", "serve.prot", r"unknown key serve.prot; did you mean serve.port\?"),
        (
            "params.yaml",
            "train.genre.max_iters",
            r"unknown key train.genre.max_iters; did you mean train.genre.max_iter\?",
        ),
        ("params.yaml", "tranform", r"unknown key tranform; did you mean transform\?"),
        ("config/schema.yaml", "shoe_size", r"unknown key shoe_size \(known here: "),
    ],
)
def test_an_unknown_key_is_an_error_with_the_nearest_known_one(
    project: Path, file: str, key: str, words: str
) -> None:
    """A misspelt key would otherwise be ignored, and the default used without a word."""
    path = project / file
    data = yaml.safe_load(path.read_text())
    node = data
    *parents, last = key.split(".")
    for name in parents:
        node = node[name]
    node[last] = 1
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=f"{file}: {words}"):
        ConfigurationManager(project)


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("transform.holdout_share", 1.5, r"must be a share in \(0, 1\)"),
        ("transform.min_playlist_tracks", "ten", "must be of type int"),
        ("train.genre.max_iter", 0, "must be a positive integer"),
        ("train.cold_start.popularity_cold_share", 1.5, r"must be in \[0, 1\]"),
        ("evaluate.k", [10, -5], "positive integers"),
        ("train_reference.features", ["tempo", "colour"], "not audio features"),
        ("train.recommender.max_training_playlists", 0, "a positive integer, or null for no limit"),
        ("evaluate.max_playlists", "many", "must be of type int or NoneType"),
    ],
)
def test_rule_violations_name_the_rule(project: Path, key: str, value: object, rule: str) -> None:
    edit_yaml(project / "params.yaml", {key: value})
    with pytest.raises(ConfigError, match=rule) as error:
        ConfigurationManager(project)
    assert key in str(error.value)


def test_a_null_limit_means_no_limit(project: Path) -> None:
    edit_yaml(project / "params.yaml", {"train.recommender.max_training_playlists": None})
    edit_yaml(project / "params.yaml", {"train_reference.max_training_tracks": 500})
    manager = ConfigurationManager(project)
    assert manager.train().recommender.max_training_playlists is None
    assert manager.train_reference().max_training_tracks == 500


def test_bad_sha256_and_source_scheme(project: Path) -> None:
    edit_yaml(project / "config" / "config.yaml", {"ingest.sha256": "abc"})
    with pytest.raises(ConfigError, match="ingest.sha256 = 'abc': must be null or 64 lowercase hex"):
        ConfigurationManager(project)
    edit_yaml(project / "config" / "config.yaml", {"ingest.sha256": None, "ingest.source": "ftp://x/y.csv"})
    with pytest.raises(ConfigError, match="ingest.source = 'ftp://x/y.csv'"):
        ConfigurationManager(project)


def test_tracking_comes_from_the_environment_only(project: Path) -> None:
    local = ConfigurationManager(project, environ={}).tracking()
    assert local.backend == "local"
    assert local.uri == f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"

    server = ConfigurationManager(
        project, environ={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5999", "MLFLOW_TRACKING_USERNAME": "u"}
    ).tracking()
    assert (server.backend, server.uri, server.username) == ("server", "http://127.0.0.1:5999", "u")

    dagshub = ConfigurationManager(
        project,
        environ={"DAGSHUB_REPO_OWNER": "me", "DAGSHUB_REPO_NAME": "songrec", "DAGSHUB_USER_TOKEN": "t0k"},
    ).tracking()
    assert dagshub.uri == "https://dagshub.com/me/songrec.mlflow"
    assert (dagshub.username, dagshub.password) == ("me", "t0k")
    assert "t0k" not in repr(dagshub)  # secrets stay out of logs

    with pytest.raises(ConfigError, match="DAGSHUB_USER_TOKEN"):
        ConfigurationManager(project, environ={"DAGSHUB_REPO_OWNER": "me", "DAGSHUB_REPO_NAME": "x"})


def test_pointing_mlflow_at_one_project_does_not_leak_into_the_next(tmp_path: Path, project: Path) -> None:
    """mlflow.set_tracking_uri writes MLFLOW_TRACKING_URI into os.environ; a second project
    configured later in the same process (Airflow tasks, the API, tests) must still be local."""
    import mlflow

    from songrec.tracking.setup import point_at

    point_at(f"sqlite:///{tmp_path / 'other.db'}")
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'other.db'}"
    assert ConfigurationManager(project).tracking().backend == "local"


def test_s3_endpoint_comes_from_the_environment(project: Path) -> None:
    manager = ConfigurationManager(project, environ={"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"})
    assert manager.ingest().s3_endpoint_url == "http://127.0.0.1:9000"
    assert ConfigurationManager(project, environ={}).ingest().s3_endpoint_url is None
