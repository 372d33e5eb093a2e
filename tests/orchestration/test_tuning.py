"""songrec tune: the search runs on training data only, logs to MLflow, writes a valid patch."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml

from songrec.config.manager import ConfigurationManager
from songrec.config.params import BoostingParams
from songrec.contract.features import numeric_features
from songrec.core.io import read_parquet
from songrec.orchestration.tuning import (
    NOT_SEARCHED,
    STEP,
    PlaylistSplit,
    boosting_score,
    boosting_split,
    boosting_trial,
    checkpoints,
    make_study,
    objective,
    pick,
    playlist_split,
    search,
)
from songrec.orchestration.tuning_run import prepare, run_tuning
from tests.conftest import edit_yaml, run_cli

TRIALS = 3


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, trained_project: Path) -> tuple[Path, dict[str, Any]]:
    """A copy of the sampled project, tuned for 3 trials: genre and recommender."""
    project = shutil.copytree(trained_project, tmp_path_factory.mktemp("tuning") / "project")
    manager = ConfigurationManager(project)
    reports = {model: run_tuning(manager, model, trials=TRIALS) for model in ("genre", "recommender")}
    return project, reports


def _split_inputs(project: Path) -> tuple[Any, Any, Any, tuple[str, ...]]:
    manager = ConfigurationManager(project)
    config = manager.train()
    return (
        manager,
        read_parquet(config.catalog),
        read_parquet(config.memberships),
        numeric_features(config.schema.audio_features),
    )


@pytest.mark.parametrize("model", ["genre", "recommender"])
def test_a_budget_of_trials_finishes_and_reports_the_gain(tuned, model: str) -> None:  # type: ignore[no-untyped-def]
    _, reports = tuned
    report = reports[model]
    assert report["trials"] == TRIALS
    assert report["complete"] + report["pruned"] == TRIALS
    validation = report["validation"]
    assert 0 < validation["current"] <= validation["best"] <= 1
    assert validation["gain"] == pytest.approx(validation["best"] - validation["current"])
    # Trial 0 is the current params.yaml values, measured on the same split (the searched ones).
    project, _ = tuned
    section = yaml.safe_load((project / "params.yaml").read_text())["train"][model]
    searched = {key: value for key, value in section.items() if key not in NOT_SEARCHED}
    assert report["current_params"] == {f"train.{model}.{key}": value for key, value in searched.items()}


@pytest.mark.parametrize("model", ["genre", "recommender"])
def test_one_parent_run_with_a_child_run_per_trial(tuned, model: str) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    project, reports = tuned
    store = f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("songrec-tuning")
    parent_id = reports[model]["mlflow_run_id"]
    parent = client.get_run(parent_id)
    assert parent.data.params["model"] == model
    assert f"best_val_{reports[model]['metric']}" in parent.data.metrics
    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    assert len(children) == TRIALS
    assert {run.data.tags["trial_state"] for run in children} <= {"complete", "pruned"}
    assert {run.data.tags["trial"] for run in children} == {str(n) for n in range(TRIALS)}
    tuning_runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`songrec.kind` = 'tuning'"
    )
    assert parent_id in {run.info.run_id for run in tuning_runs}
    # The pipeline's own experiment holds no tuning run.
    main = client.get_experiment_by_name("songrec")
    assert main is None or not client.search_runs([main.experiment_id])


@pytest.mark.parametrize("model", ["genre", "recommender"])
def test_the_patch_holds_real_params_keys_and_valid_values(tuned, model: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project, reports = tuned
    patch_file = project / reports[model]["patch"]
    patch = yaml.safe_load(patch_file.read_text())
    assert patch == reports[model]["best_params"]
    assert "dvc exp run -S" in patch_file.read_text()
    params = yaml.safe_load((project / "params.yaml").read_text())
    for key in patch:
        node = params
        for part in key.split("."):
            assert part in node, f"{key} is no params.yaml key"
            node = node[part]
    patched = tmp_path / "params.yaml"
    shutil.copy(project / "params.yaml", patched)
    edit_yaml(patched, patch)
    tuned_params = getattr(ConfigurationManager(project, params_file=patched).train(), model)
    assert {f"train.{model}.{k}": v for k, v in vars(tuned_params).items() if k not in NOT_SEARCHED} == patch


def test_genre_reads_only_training_tracks(trained_project: Path) -> None:
    manager, catalog, _, numeric = _split_inputs(trained_project)
    config = manager.train()
    split = boosting_split(catalog, "genre", config.genre, numeric, seed=42, model_seed=42)
    train_ids = set(catalog.loc[catalog["split"] == "train", "track_id"])
    assert set(split.val_ids) <= train_ids
    assert set(split.fit_ids) <= train_ids
    assert not set(split.val_ids) & set(split.fit_ids)
    assert len(split.val_ids) == pytest.approx(0.2 * len(train_ids), abs=1)
    # Whatever the test split holds, the split is the same: its rows are never read.
    scrambled = catalog.copy()
    test = scrambled["split"] == "test"
    scrambled.loc[test, "genre"] = "polka"
    scrambled.loc[test, "danceability"] = -1.0
    again = boosting_split(scrambled, "genre", config.genre, numeric, seed=42, model_seed=42)
    np.testing.assert_array_equal(split.fit_x, again.fit_x)
    np.testing.assert_array_equal(split.val_x, again.val_x)


def test_the_recommender_never_reads_evaluation_playlists(trained_project: Path) -> None:
    manager, catalog, memberships, numeric = _split_inputs(trained_project)
    transform = manager.transform()
    split = playlist_split(
        catalog, memberships, numeric, 42, 42, transform.holdout_share, transform.min_playlist_tracks
    )
    evaluation = set(memberships.loc[memberships["evaluation"], "playlist_id"])
    assert evaluation, "the sample has evaluation playlists"
    validation = set(split.validation["playlist_id"])
    assert validation and not validation & evaluation
    assert not set(split.fit_memberships["playlist_id"]) & evaluation
    # The validation playlists are marked so the fit never learns its weights from them, and
    # their hidden tracks are not among the memberships it sees.
    marked = set(split.fit_memberships.loc[split.fit_memberships["evaluation"], "playlist_id"])
    assert marked == validation
    hidden = split.validation[split.validation["part"] == "hidden"]
    assert len(hidden) > 0
    seen = set(split.fit_memberships["playlist_id"] + "/" + split.fit_memberships["track_id"])
    assert not set(hidden["playlist_id"] + "/" + hidden["track_id"]) & seen


def test_trials_learn_from_the_train_stages_bounded_sample(trained_project: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    shutil.copy(trained_project / "params.yaml", params)
    edit_yaml(params, {"train.recommender.max_training_playlists": 7})
    split = prepare(ConfigurationManager(trained_project, params_file=params), "recommender", 42)
    assert isinstance(split, PlaylistSplit) and split.max_training_playlists == 7


def test_validation_choice_is_seeded_and_apart_from_the_transform_split() -> None:
    keys = [f"t{i}" for i in range(1000)]
    assert (pick(keys, 0.2, 1) == pick(list(reversed(keys)), 0.2, 1)[::-1]).all()
    assert pick(keys, 0.2, 1).sum() == 200
    assert (pick(keys, 0.2, 1) != pick(keys, 0.2, 2)).any()
    assert pick(["only"], 0.2, 1).tolist() == [True]


def test_a_warm_started_trial_scores_as_one_fit_and_can_be_pruned(trained_project: Path) -> None:
    from sklearn.base import clone

    split = prepare(ConfigurationManager(trained_project), "genre", 42)
    params = BoostingParams(
        max_iter=2 * STEP + 10, learning_rate=0.1, max_leaf_nodes=15, l2_regularization=1.0
    )
    reported: list[tuple[float, int]] = []

    def report(value: float, iterations: int) -> bool:
        reported.append((value, iterations))
        return False

    score = boosting_trial(split, params, report)
    assert [step for _, step in reported] == checkpoints(params.max_iter) == [STEP, 2 * STEP, 2 * STEP + 10]
    assert score == reported[-1][0]
    once = clone(split.estimator).set_params(max_iter=params.max_iter, learning_rate=0.1, max_leaf_nodes=15)
    assert boosting_score(split, once.fit(split.fit_x, split.fit_y)) == score
    with pytest.raises(optuna.TrialPruned):
        boosting_trial(split, params, lambda value, iterations: True)


class _NoLog:
    def start(self, number: int, params: Any) -> None: ...
    def step(self, value: float, iterations: int) -> None: ...
    def end(self, state: str, value: float | None) -> None: ...


def test_a_minutes_budget_stops_starting_trials(trained_project: Path) -> None:
    split = prepare(ConfigurationManager(trained_project), "genre", 42)
    study = make_study("genre", 42)
    current = {"max_iter": 50, "learning_rate": 0.1, "max_leaf_nodes": 8, "l2_regularization": 1.0}
    search(study, objective("genre", split, _NoLog()), current, trials=None, minutes=1e-6)
    assert len(study.trials) == 1  # the current params; no trial starts once the time is up
    assert study.trials[0].params == current
    assert study.trials[0].user_attrs["params"] == current


def test_apply_writes_the_patch_into_params_yaml(tuned, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source, reports = tuned
    project = shutil.copytree(source, tmp_path / "project")
    patch = reports["genre"]["best_params"]
    # Make sure the patch changes something, whatever the 3 trials found.
    edit_yaml(project / "params.yaml", {"train.genre.max_iter": patch["train.genre.max_iter"] + 1})
    before = ConfigurationManager(project).train()
    result = run_cli("songrec", "tune", "genre", "--apply", cwd=project)
    assert f"params.yaml train.genre.max_iter: {patch['train.genre.max_iter'] + 1} ->" in result.stdout
    assert "note: train.genre.max_iter changed since the tuning run" in result.stdout
    after = ConfigurationManager(project).train()
    assert {f"train.genre.{k}": v for k, v in vars(after.genre).items()} == patch
    assert after.popularity == before.popularity
    assert after.recommender == before.recommender
    again = run_cli("songrec", "tune", "genre", "--apply", cwd=project)
    assert "params.yaml already holds the patch" in again.stdout
    assert "changed since the tuning run" not in again.stdout


def test_apply_without_a_tuning_run_fails_clearly(trained_project: Path, tmp_path: Path) -> None:
    project = shutil.copytree(trained_project, tmp_path / "project", ignore=shutil.ignore_patterns("reports"))
    result = run_cli("songrec", "tune", "popularity", "--apply", cwd=project, check=False)
    assert result.returncode == 1
    assert "run `songrec tune popularity` first" in result.stderr
