"""The stage registry is the one source: dvc.yaml agrees with it, and its stages are named alike."""

from __future__ import annotations

from pathlib import Path

import yaml

from songrec.config.manager import ConfigurationManager
from songrec.orchestration.registry import STAGE_NAMES, STAGES, dvc_pipeline, get_stage
from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "songrec"


def test_committed_dvc_yaml_matches_the_registry() -> None:
    manager = ConfigurationManager(ROOT)
    committed = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    expected = dvc_pipeline(manager)
    assert list(committed["stages"]) == list(STAGE_NAMES)  # names and order
    for name in STAGE_NAMES:
        ours, theirs = expected["stages"][name], committed["stages"][name]
        for field in ("cmd", "deps", "outs", "params", "metrics", "plots"):
            assert theirs.get(field) == ours.get(field), f"dvc.yaml stage {name}: {field} differs"
    assert committed == expected


def test_every_stage_has_one_name_everywhere() -> None:
    manager = ConfigurationManager(ROOT)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for stage in STAGES:
        assert (PACKAGE / "stages" / f"{stage.name}.py").is_file()
        assert callable(getattr(manager, stage.name))  # the config dataclass getter
        for key in stage.params:
            assert key in params, f"{stage.name} reads params key {key} that params.yaml lacks"
        assert stage.command == f"songrec run {stage.name}"


def test_nothing_that_trains_reads_the_evaluation_playlists() -> None:
    manager = ConfigurationManager(ROOT)
    eval_playlists = manager.transform().eval_playlists
    for name in ("train_reference", "train"):
        assert eval_playlists not in get_stage(name).deps(manager)
    assert eval_playlists in get_stage("evaluate").deps(manager)


def test_every_input_is_written_by_an_earlier_stage_or_is_a_source() -> None:
    manager = ConfigurationManager(ROOT)
    written: set[Path] = set()
    inputs = (ROOT / "data" / "source", manager.retrain().additions_dir)
    for stage in STAGES:
        for dep in stage.deps(manager):
            assert dep in written or any(dep.is_relative_to(i) for i in inputs) or dep.suffix == ".yaml", (
                f"{stage.name} reads {dep} before any stage writes it"
            )
        written |= set(stage.outs(manager))


def test_configuration_manager_creates_nothing(project: Path) -> None:
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    ConfigurationManager(project)
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before


def test_a_stage_depends_on_the_code_it_reaches_through_others() -> None:
    """The two arrows a hand-written list missed: transform's release year, train's holdout draw."""
    source = ROOT / "src"

    def code(name: str) -> set[str]:
        return {p.relative_to(ROOT).as_posix() for p in get_stage(name).code(source)}

    assert "src/songrec/contract/features.py" in code("transform")
    assert "src/songrec/core/hashing.py" in code("train")
    # the code that scores the unpickled bundle, though evaluate never imports it by name
    assert "src/songrec/models/recommender/reranker.py" in code("evaluate")
    assert "src/songrec/serving/app.py" not in code("evaluate")
    assert not any(
        "/serving/" in path or "/orchestration/" in path for name in STAGE_NAMES for path in code(name)
    )
