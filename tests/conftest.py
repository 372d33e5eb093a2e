"""Shared fixtures: a sampled copy of the project in a temporary folder, and helpers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "data" / "source" / "spotify_songs.csv.gz"
BIN = Path(sys.executable).parent

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see src/songrec/cli.py
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
# Tests must not pick up a tracking server or DagsHub from the developer's shell.
for name in (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "DAGSHUB_REPO_OWNER",
    "DAGSHUB_REPO_NAME",
    "DAGSHUB_USER_TOKEN",
    "SONGREC_ROOT",
):
    os.environ.pop(name, None)


@pytest.fixture(autouse=True)
def no_tracking_server_leaks() -> Iterator[None]:
    """mlflow.set_tracking_uri writes MLFLOW_TRACKING_URI into os.environ; a test that calls it
    would send every later test's runs to its store. Each test starts as the shell left it."""
    before = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def sample_tracks(n_playlists: int = 40, seed: int = 7) -> pd.DataFrame:
    """Whole playlists of the real data set, sampled so every track keeps its memberships."""
    tracks = pd.read_csv(SOURCE)
    playlists = pd.Series(tracks["playlist_id"].unique()).sort_values()
    chosen = playlists.sample(n=n_playlists, random_state=seed)
    return tracks[tracks["playlist_id"].isin(chosen)].reset_index(drop=True)


@pytest.fixture(scope="session")
def sample_frame() -> pd.DataFrame:
    return sample_tracks()


def make_project(folder: Path, tracks: pd.DataFrame | None, fast_reference: bool = True) -> Path:
    """A runnable copy of the project: config, params, dvc.yaml, src, and a data source."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config", "src", "dags"):
        shutil.copytree(
            ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    for name in ("params.yaml", "dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, folder / name)
    source = folder / "data" / "source" / "spotify_songs.csv.gz"
    source.parent.mkdir(parents=True)
    (folder / "data" / "additions").mkdir()
    if tracks is not None:
        tracks.to_csv(source, index=False, compression="gzip")
        edit_yaml(folder / "config" / "config.yaml", {"ingest.sha256": None})
    else:
        shutil.copy(SOURCE, source)
    if fast_reference:  # the reference's 250-tree boosting takes minutes; its shape is what we test
        edit_yaml(folder / "params.yaml", {"train_reference.n_estimators": 20})
    return folder


def edit_yaml(path: Path, changes: dict[str, object]) -> None:
    data = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def project(tmp_path: Path, sample_frame: pd.DataFrame) -> Path:
    return make_project(tmp_path / "project", sample_frame)


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command of the venv (songrec, dvc, ...) in `cwd`, capturing its output."""
    full_env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", **(env or {})}
    result = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=cwd,
        env=full_env,
        text=True,
        capture_output=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def git_init(folder: Path) -> None:
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.email", "tests@songrec.invalid"],
        ["git", "config", "user.name", "songrec tests"],
    ):
        subprocess.run(command, cwd=folder, check=True)


def git_commit(folder: Path, message: str = "snapshot") -> None:
    subprocess.run(["git", "add", "-A"], cwd=folder, check=True)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=folder, check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory, sample_frame: pd.DataFrame) -> Path:
    """A sampled project that has run ingest through train in-process (no MLflow)."""
    from songrec.config.manager import ConfigurationManager
    from songrec.orchestration.registry import get_stage

    folder = make_project(tmp_path_factory.mktemp("trained") / "project", sample_frame)
    manager = ConfigurationManager(folder)
    for name in ("ingest", "validate", "transform", "train_reference", "train"):
        get_stage(name).run(manager)
    return folder


@pytest.fixture(scope="session")
def bundle_file(trained_project: Path) -> Path:
    from songrec.config.manager import ConfigurationManager

    return ConfigurationManager(trained_project).train().bundle


@pytest.fixture(scope="session")
def bundle(bundle_file: Path) -> Any:
    """The trained sample project's bundle, loaded once per session."""
    from songrec.core.io import load_model

    return load_model(bundle_file)


POSTGRES_USERS = ("postgres", "root")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL (127.0.0.1:5432, trust auth), dropped after."""
    name = f"songrec_test_{uuid.uuid4().hex[:12]}"
    errors = []
    for user in POSTGRES_USERS:
        admin = create_engine(
            f"postgresql+psycopg://{user}@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
        )
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:
            errors.append(f"{user}: {exc}")
            admin.dispose()
            continue
        try:
            yield f"postgresql+psycopg://{user}@127.0.0.1:5432/{name}"
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        return
    pytest.fail(f"no PostgreSQL at 127.0.0.1:5432 for users {POSTGRES_USERS}: {errors}")
