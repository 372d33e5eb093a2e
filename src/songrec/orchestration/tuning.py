"""The hyperparameter search behind `songrec tune`: Optuna's TPE on a validation split carved from
the training data only. `tuning_run.py` runs it (MLflow, the params patch, the report).

- genre, popularity: the training split's tracks (catalog `split == "train"`) are split again by
  a seeded hash of the track id; no test-split row is read. The target encoding has no tuned
  parameter, so it is fitted once, as the pipeline's first step would be. Each trial then grows
  its boosting model STEP iterations at a time (warm start: the same trees as one fit) and
  reports the validation score after each step; MedianPruner stops a trial whose score is below
  the median of earlier trials at the same number of iterations. That comparison favours fast
  learning rates early on, so nothing is pruned before WARMUP_ITERATIONS.
- recommender: the evaluation playlists are dropped entirely. A seeded share of the remaining
  playlists become validation playlists, part of each hidden; they are marked `evaluation` so
  the fit never learns its weights from them (as the pipeline treats the real evaluation
  playlists), and Recall@100 is measured on them. The fit has no intermediate score, so nothing
  is pruned (NopPruner): every trial runs to the end.

Trial 0 is always the current params.yaml values on the same split, so the gain is like for like.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import numpy as np
import optuna
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import f1_score, r2_score

from songrec.config.params import BoostingParams, RecommenderParams
from songrec.core.hashing import hidden_pairs, stable_uniform
from songrec.evaluation.metrics import continuation_metrics
from songrec.models.predictors import genre_classifier, model_inputs, popularity_regressor
from songrec.models.recommender.hybrid import HybridRecommender

MODELS = ("genre", "popularity", "recommender")
METRICS = {"genre": "macro_f1", "popularity": "r2", "recommender": "recall_at_100"}
VALIDATION_SHARE = 0.2  # of the training tracks, or of the eligible training playlists
STEP = 50  # boosting iterations between two reports to the pruner
WARMUP_ITERATIONS = 100  # no boosting trial is pruned before this many iterations
PRUNER_STARTUP_TRIALS = 5  # complete trials before the pruner judges any


# ----------------------------------------------------------------------------- validation splits


def pick(keys: Sequence[str] | pd.Series | pd.Index, share: float, seed: int) -> np.ndarray:
    """A seeded choice of ceil(share * n) keys (at least one), by a hash of "validation/<key>":
    another draw than the transform stage's test split and evaluation playlists."""
    keys = [str(key) for key in keys]
    chosen = np.zeros(len(keys), dtype=bool)
    if keys:
        draw = stable_uniform((f"validation/{key}" for key in keys), seed)
        chosen[np.argsort(draw, kind="stable")[: max(1, math.ceil(share * len(keys)))]] = True
    return chosen


@dataclass(frozen=True)
class BoostingSplit:
    """Encoded training rows to fit on and validation rows to score, both from split == train."""

    kind: str  # "genre" or "popularity"
    fit_x: np.ndarray
    fit_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    fit_ids: pd.Index
    val_ids: pd.Index
    estimator: Any  # the unfitted boosting model of the pipeline (current params)


def boosting_split(
    catalog: pd.DataFrame,
    kind: str,
    params: BoostingParams,
    numeric: Sequence[str],
    seed: int,
    model_seed: int,
    share: float = VALIDATION_SHARE,
) -> BoostingSplit:
    train = catalog[catalog["split"] == "train"]  # the only rows read
    val = pick(train["track_id"], share, seed)
    build = genre_classifier if kind == "genre" else popularity_regressor
    pipeline = build(params, numeric, model_seed)
    target = train["genre"].astype(str) if kind == "genre" else train["popularity"]
    encode = pipeline.named_steps["encode"]
    fit_x = encode.fit_transform(model_inputs(train[~val], numeric), target[~val])
    val_x = encode.transform(model_inputs(train[val], numeric))
    return BoostingSplit(
        kind=kind,
        fit_x=np.asarray(fit_x),
        fit_y=target[~val].to_numpy(),
        val_x=np.asarray(val_x),
        val_y=target[val].to_numpy(),
        fit_ids=pd.Index(train["track_id"][~val]),
        val_ids=pd.Index(train["track_id"][val]),
        estimator=pipeline.named_steps["model"],
    )


@dataclass(frozen=True)
class PlaylistSplit:
    """Memberships to fit on (no evaluation playlist; validation playlists without their hidden
    tracks and marked `evaluation`) and the validation playlists' tracks, visible or hidden."""

    catalog: pd.DataFrame
    fit_memberships: pd.DataFrame
    validation: pd.DataFrame  # playlist_id, track_id, part
    numeric: tuple[str, ...]
    model_seed: int
    # Not searched: every trial learns from the same bounded sample as the train stage does.
    max_training_playlists: int | None = None


def playlist_split(
    catalog: pd.DataFrame,
    memberships: pd.DataFrame,
    numeric: Sequence[str],
    seed: int,
    model_seed: int,
    holdout_share: float,
    min_playlist_tracks: int,
    share: float = VALIDATION_SHARE,
) -> PlaylistSplit:
    training = memberships[~memberships["evaluation"].to_numpy(dtype=bool)]  # the only rows read
    pairs = training[["playlist_id", "track_id"]].drop_duplicates()
    sizes = pairs.groupby("playlist_id").size()
    eligible = sizes[sizes >= min_playlist_tracks].index.sort_values()
    if len(eligible) < 2:
        raise ValueError(f"fewer than 2 training playlists of {min_playlist_tracks}+ tracks to validate on")
    chosen = set(eligible[pick(eligible, share, seed)])
    val_pairs = (
        pairs[pairs["playlist_id"].isin(chosen)]
        .sort_values(["playlist_id", "track_id"])
        .reset_index(drop=True)
    )
    hidden = hidden_pairs(val_pairs, holdout_share, seed + 2)
    hidden_keys = set(val_pairs["playlist_id"][hidden] + "/" + val_pairs["track_id"][hidden])
    keys = training["playlist_id"] + "/" + training["track_id"]
    fit = training[~keys.isin(hidden_keys).to_numpy()]
    return PlaylistSplit(
        catalog=catalog,
        fit_memberships=fit.assign(evaluation=fit["playlist_id"].isin(chosen).to_numpy()),
        validation=val_pairs.assign(part=np.where(hidden, "hidden", "visible")),
        numeric=tuple(numeric),
        model_seed=model_seed,
    )


# ----------------------------------------------------------------------------- one trial


def checkpoints(max_iter: int) -> list[int]:
    """The iteration counts a boosting trial reports at: every STEP, and its last."""
    return [*range(STEP, max_iter, STEP), max_iter]


def boosting_score(split: BoostingSplit, model: Any) -> float:
    predicted = model.predict(split.val_x)
    if split.kind == "genre":
        return float(f1_score(split.val_y, predicted, average="macro", labels=model.classes_))
    return float(r2_score(split.val_y, predicted))


def boosting_trial(
    split: BoostingSplit, params: BoostingParams, report: Callable[[float, int], bool] | None = None
) -> float:
    """Validation score of one parameter set. `report(score, iterations)` after each STEP;
    when it returns True (prune), the trial stops with optuna.TrialPruned."""
    model = clone(split.estimator).set_params(
        learning_rate=params.learning_rate,
        max_leaf_nodes=params.max_leaf_nodes,
        l2_regularization=params.l2_regularization,
        warm_start=True,
    )
    score = math.nan
    for done in checkpoints(params.max_iter):
        model.set_params(max_iter=done).fit(split.fit_x, split.fit_y)
        score = boosting_score(split, model)
        stop = report(score, done) if report is not None else False
        if stop and done < params.max_iter:
            raise optuna.TrialPruned(f"validation score {score:.4f} after {done} iterations")
    return score


def recommender_trial(split: PlaylistSplit, params: RecommenderParams) -> float:
    params = replace(params, max_training_playlists=split.max_training_playlists)
    recommender = HybridRecommender.from_params(params, split.numeric, split.model_seed)
    recommender.fit(split.catalog, split.fit_memberships)
    track_index = pd.Index(split.catalog["track_id"])
    return continuation_metrics(recommender, track_index, split.validation, [100])["recall_at_100"]


# ----------------------------------------------------------------------------- search spaces


def _round(value: float) -> float:
    """Three significant digits: the value tried is the value written to params.yaml."""
    return float(f"{value:.3g}")


def suggest_boosting(trial: optuna.Trial) -> BoostingParams:
    return BoostingParams(
        max_iter=trial.suggest_int("max_iter", 50, 600, step=STEP),
        learning_rate=_round(trial.suggest_float("learning_rate", 0.01, 0.3, log=True)),
        max_leaf_nodes=trial.suggest_int("max_leaf_nodes", 8, 128, log=True),
        l2_regularization=_round(trial.suggest_float("l2_regularization", 1e-3, 10.0, log=True)),
    )


def suggest_recommender(trial: optuna.Trial) -> RecommenderParams:
    return RecommenderParams(
        name="hybrid",
        training_holdout_share=round(trial.suggest_float("training_holdout_share", 0.1, 0.5, step=0.05), 2),
        candidates_per_playlist=trial.suggest_int("candidates_per_playlist", 100, 600, step=50),
        random_negatives_per_playlist=trial.suggest_int("random_negatives_per_playlist", 100, 800, step=100),
        regularization_c=_round(trial.suggest_float("regularization_c", 0.01, 100.0, log=True)),
        co_listened_candidates=trial.suggest_int("co_listened_candidates", 0, 200, step=25),
        co_listening_boost=round(trial.suggest_float("co_listening_boost", 0.0, 1.5, step=0.05), 2),
    )


# The recommender's `name`, `max_per_artist` (a ranking setting chosen by bench/diversity.py) and
# `max_training_playlists` (a bound on the fit's cost, chosen by bench/learning_curve.py).
NOT_SEARCHED = ("name", "max_per_artist", "max_training_playlists")


def tuned_values(params: BoostingParams | RecommenderParams) -> dict[str, Any]:
    """The searched values of a parameter set (all but NOT_SEARCHED)."""
    return {key: value for key, value in asdict(params).items() if key not in NOT_SEARCHED}


# ----------------------------------------------------------------------------- the study


class TrialLog(Protocol):
    """Where each trial is recorded as it runs (tuning_run logs an MLflow child run)."""

    def start(self, number: int, params: Mapping[str, Any]) -> None: ...
    def step(self, value: float, iterations: int) -> None: ...
    def end(self, state: str, value: float | None) -> None: ...


def make_study(model: str, seed: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # tuning_run logs each trial itself
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.NopPruner()
        if model == "recommender"
        else optuna.pruners.MedianPruner(
            n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=WARMUP_ITERATIONS
        )
    )
    return optuna.create_study(
        study_name=f"songrec-{model}",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner,
    )


def objective(
    model: str, split: BoostingSplit | PlaylistSplit, log: TrialLog
) -> Callable[[optuna.Trial], float]:
    """Optuna's objective for `model`: suggest, record the values tried, score on validation."""

    def run(trial: optuna.Trial) -> float:
        params: BoostingParams | RecommenderParams
        params = suggest_recommender(trial) if model == "recommender" else suggest_boosting(trial)
        values = tuned_values(params)
        trial.set_user_attr("params", values)
        log.start(trial.number, values)
        last: list[float] = []

        def report(value: float, iterations: int) -> bool:
            trial.report(value, iterations)
            log.step(value, iterations)
            last.append(value)
            return trial.should_prune()

        try:
            if isinstance(split, PlaylistSplit) and isinstance(params, RecommenderParams):
                score = recommender_trial(split, params)
            elif isinstance(split, BoostingSplit) and isinstance(params, BoostingParams):
                score = boosting_trial(split, params, report)
            else:
                raise TypeError(f"no {type(split).__name__} for {model}")
        except optuna.TrialPruned:
            log.end("pruned", last[-1] if last else None)
            raise
        except BaseException:
            log.end("failed", None)
            raise
        log.end("complete", score)
        return score

    return run


def search(
    study: optuna.Study,
    run: Callable[[optuna.Trial], float],
    current: Mapping[str, Any],
    trials: int | None,
    minutes: float | None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
) -> None:
    """Trial 0 is `current` (the params.yaml values); then TPE, until `trials` trials have run or,
    with `minutes`, no new trial starts after that time (a running trial finishes)."""
    study.enqueue_trial(dict(current), skip_if_exists=True)
    study.optimize(run, n_trials=trials, timeout=minutes * 60 if minutes else None, callbacks=list(callbacks))
