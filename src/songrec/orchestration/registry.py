"""The stage registry: the one ordered list of songrec's pipeline stages.

Each stage is declared once here: its name (the same everywhere: module, dvc stage, params
section, config dataclass, Airflow task id), what it reads and writes, the params keys it
depends on, and what is worth reporting after it ran. Its code dependencies are not written by
hand: they are the modules its module imports, directly or through others (code_graph), so
editing any of them reruns the stage. `dvc.yaml` is generated from this list (`songrec
pipeline dvc-yaml`) and a test fails when the two disagree; the Airflow DAGs make one task per
entry. Importing this module is cheap: stage modules load only when they run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from songrec.config.manager import ConfigurationManager
from songrec.core.errors import SongrecError
from songrec.core.io import read_json
from songrec.orchestration.code_graph import module_files, reachable

Paths = Callable[[ConfigurationManager], list[Path]]


def _none(_: ConfigurationManager) -> list[Path]:
    return []


def _nothing(_: ConfigurationManager) -> dict[str, Any]:
    return {}


def _never(_: ConfigurationManager) -> bool:
    return False


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    deps: Paths
    outs: Paths
    params: tuple[str, ...] = ()  # keys of params.yaml
    config_params: tuple[str, ...] = ()  # keys of config/config.yaml that act as params
    metrics: Paths = _none
    plots: Paths = _none
    # Modules whose classes the stage meets only by unpickling its inputs (no import names
    # them), whose code still decides what the stage computes.
    unpickles: tuple[str, ...] = ()
    summary: Callable[[ConfigurationManager], dict[str, Any]] = _nothing  # read from its outputs
    data_error: Callable[[ConfigurationManager], bool] = _never  # failed on the data: no retry helps

    @property
    def module(self) -> str:
        return f"songrec.stages.{self.name}"

    def code(self, source_root: Path) -> list[Path]:
        """The source files of every module the stage runs: its own and all it imports."""
        files = module_files(source_root)
        modules = reachable([self.module, *self.unpickles], source_root)
        return sorted(files[module] for module in modules)

    @property
    def command(self) -> str:
        return f"songrec run {self.name}"

    def run(self, manager: ConfigurationManager) -> dict[str, Any]:
        """Run the stage in this process and return its small summary."""
        result: dict[str, Any] = importlib.import_module(self.module).run(manager) or {}
        return result


def _ingest_inputs(manager: ConfigurationManager) -> list[Path]:
    """The local source file (a remote one is stood for by its sha256 param) and the additions."""
    source = manager.ingest().source
    local = (
        [] if "://" in source and not source.startswith("file://") else [Path(source.removeprefix("file://"))]
    )
    return [*local, manager.ingest().additions_dir]


STAGES: tuple[Stage, ...] = (
    Stage(
        name="ingest",
        description="fetch the source (file, http(s), s3), check its sha256, write data/raw",
        deps=_ingest_inputs,
        outs=lambda m: [m.ingest().raw_tracks, m.ingest().record],
        config_params=("ingest.source", "ingest.sha256"),
    ),
    Stage(
        name="validate",
        description="hold the raw data to config/schema.yaml; invalid data stops the pipeline",
        deps=lambda m: [m.validate().raw_tracks, m.validate().schema_file],
        outs=lambda m: [m.validate().validated_tracks, m.validate().report],
        config_params=("validate.max_quarantined_share",),
        summary=lambda m: _pick(read_json(m.validate().report), "passed", "rows", "quarantined_rows"),
        data_error=lambda m: _validation_failed(m),
    ),
    Stage(
        name="transform",
        description="catalog (one row per track), genre split, evaluation playlists",
        deps=lambda m: [m.transform().validated_tracks],
        outs=lambda m: [m.transform().catalog, m.transform().memberships, m.transform().eval_playlists],
        params=("seed", "transform"),
    ),
    Stage(
        name="train_reference",
        description="fit the reference system's genre classifier and per-genre mixtures (slow)",
        deps=lambda m: [m.train_reference().catalog],
        outs=lambda m: [m.train_reference().model],
        params=("seed", "train_reference"),
    ),
    Stage(
        name="train",
        description="fit the model bundle: recommender, genre classifier, popularity regressor",
        deps=lambda m: [m.train().catalog, m.train().memberships, m.train().reference_model],
        outs=lambda m: [m.train().bundle],
        params=("seed", "train"),
    ),
    Stage(
        name="evaluate",
        description="offline metrics and plots, one MLflow run, registry and promotion gate",
        deps=lambda m: [
            m.evaluate().catalog,
            m.evaluate().memberships,
            m.evaluate().eval_playlists,
            m.evaluate().bundle,
            m.evaluate().reference_model,
            m.evaluate().ingestion_record,
            m.evaluate().validation_report,
        ],
        # reports/promotion.json is written but not declared: it holds the registry's answer
        # (run id, version, the gate's verdict), not a function of the stage's inputs, and a
        # new one in dvc.lock after every run would leave the work tree changed.
        outs=_none,
        params=("seed", "evaluate"),
        metrics=lambda m: list(m.evaluate().metric_files.values()),
        plots=lambda m: [
            m.evaluate().plots_dir / name
            for name in (
                "confusion_matrix.png",
                "popularity.png",
                "continuation.png",
                "diversity_tradeoff.png",
            )
        ],
        # The bundle's recommender and predictors: their code scores, whatever the bundle's bytes.
        unpickles=(
            "songrec.models.recommender.hybrid",
            "songrec.models.reference",
            "songrec.models.predictors",
            "songrec.models.cold_start",
        ),
        summary=lambda m: _pick(
            read_json(m.evaluate().promotion_report),
            "run_id",
            "challenger_version",
            "champion_version_before",
            "champion_version_after",
            "promoted",
            "reason",
        ),
    ),
)

STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)


def get_stage(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}")


def _pick(report: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: report.get(key) for key in keys}


def _validation_failed(manager: ConfigurationManager) -> bool:
    """The report of a validation that ran and failed (not one that could not run)."""
    try:
        return read_json(manager.validate().report).get("passed") is False
    except (SongrecError, ValueError):
        return False


def dvc_pipeline(manager: ConfigurationManager) -> dict[str, Any]:
    """The content of dvc.yaml, derived from the registry.

    Every output is `persist: true`: DVC then leaves the last good output in place while a
    stage runs (our writes are atomic), and never restores a stage from its run-cache, so a
    run that `dvc repro` reports is a run that happened and was logged to MLflow.
    """
    rel = manager.relative
    source_root = manager.root / "src"
    stages: dict[str, Any] = {}
    for stage in STAGES:
        entry: dict[str, Any] = {"cmd": stage.command}
        entry["deps"] = [rel(p) for p in stage.deps(manager)] + [rel(p) for p in stage.code(source_root)]
        params: list[Any] = list(stage.params)
        if stage.config_params:
            params.append({"config/config.yaml": list(stage.config_params)})
        if params:
            entry["params"] = params
        outs = [{rel(p): {"persist": True}} for p in stage.outs(manager)]
        if outs:
            entry["outs"] = outs
        if metrics := stage.metrics(manager):
            entry["metrics"] = [{rel(p): {"cache": False, "persist": True}} for p in metrics]
        if plots := stage.plots(manager):
            entry["plots"] = [{rel(p): {"persist": True}} for p in plots]
        stages[stage.name] = entry
    return {"stages": stages}
