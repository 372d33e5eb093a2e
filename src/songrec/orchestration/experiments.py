"""An experiment: the pipeline with params overrides, run beside the workspace, never in it.

An Airflow run with overrides (songrec_training's trigger form) must not turn a one-off trial
into the parameters of the next scheduled retraining, nor leave the workspace's outputs made
with other params. So the pipeline runs in a scratch copy of the project under
var/experiments/<name>/, with the overrides written into the copy's params.yaml: it shares the
workspace's DVC cache (stages whose inputs did not change are restored, not rerun), its MLflow
store and its event store, so the run and its candidate version land where every other run
does. The copy is removed afterwards; the workspace's params.yaml, dvc.lock and outputs are
untouched. (`dvc exp run --temp` does the same with git, which the compose workspace has not.)
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from songrec.config.manager import ConfigurationManager
from songrec.config.rules import CONFIG_FILE
from songrec.core.errors import SongrecError
from songrec.core.io import read_json
from songrec.orchestration.dvc_runner import OUTPUT_TAIL_LINES, run_dvc
from songrec.orchestration.overrides import apply_params_overrides

log = logging.getLogger(__name__)

EXPERIMENTS_DIR = "var/experiments"
# What DVC needs to run the pipeline: its definition, its code, its configuration, its inputs.
PROJECT_FILES = ("params.yaml", "dvc.yaml", "dvc.lock", ".dvcignore")
PROJECT_FOLDERS = ("config", "src", "data/source", "data/additions")


def run_experiment(root: Path, overrides: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Run the whole pipeline with `overrides` (dotted params.yaml keys) in a scratch copy of
    the project at `root`; return the params changed and the evaluate stage's decision."""
    manager = ConfigurationManager(root)
    folder = root / EXPERIMENTS_DIR / _safe(name)
    if folder.exists():
        shutil.rmtree(folder)
    try:
        _copy_project(root, folder)
        _share_stores(manager, folder)
        changes = apply_params_overrides(overrides, root=folder)
        _dvc(["cache", "dir", "--local", str(root / ".dvc" / "cache")], folder)
        run_dvc(["checkout", "--quiet"], folder)  # outputs of unchanged stages, from the shared cache
        _dvc(["repro"], folder)
        promotion = read_json(ConfigurationManager(folder).evaluate().promotion_report)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    log.info("experiment %s: %s -> version %s", name, changes, promotion.get("challenger_version"))
    return {"experiment": name, "params": changes, **promotion}


def _copy_project(root: Path, folder: Path) -> None:
    folder.mkdir(parents=True)
    for name in PROJECT_FILES:
        if (root / name).exists():
            shutil.copy2(root / name, folder / name)
    for name in PROJECT_FOLDERS:
        if (root / name).exists():
            shutil.copytree(
                root / name, folder / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
    (folder / ".dvc").mkdir()
    if (root / ".dvc" / "config").exists():
        shutil.copy2(root / ".dvc" / "config", folder / ".dvc" / "config")
    else:  # a workspace made with `dvc init --no-scm`
        (folder / ".dvc" / "config").write_text("[core]\n    no_scm = True\n")


def _share_stores(manager: ConfigurationManager, folder: Path) -> None:
    """Point the copy's local MLflow store and event store at the workspace's (absolute paths),
    so the experiment's run, candidate and promotion history are where everything else is."""
    path = folder / CONFIG_FILE
    config = yaml.safe_load(path.read_text())
    tracking = manager.tracking()
    if tracking.backend == "local":
        config["tracking"]["local_dir"] = str(Path(tracking.uri.removeprefix("sqlite:///")).parent)
    store = manager.serve().event_store_url
    if store.startswith("sqlite:///"):
        config["serve"]["event_store"] = store.removeprefix("sqlite:///")
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _dvc(arguments: list[str], folder: Path) -> None:
    code, lines = run_dvc(arguments, folder)
    if code != 0:
        tail = "\n".join(lines[-OUTPUT_TAIL_LINES:])
        raise SongrecError(f"experiment: dvc {' '.join(arguments)} failed (exit code {code}):\n{tail}")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "experiment"
