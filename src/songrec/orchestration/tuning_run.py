"""`songrec tune` and the songrec_tuning DAG: run the search of tuning.py under one MLflow parent
run (a child run per trial), write the best values as a params.yaml patch and a report, and
apply a patch to params.yaml on request.

Outputs, in reports/tuning/ (ignored by git, like all of reports/):
- <model>.yaml: dotted params.yaml keys and their tuned values, the patch `songrec tune <model>
  --apply` writes into params.yaml and `dvc exp run -S key=value ...` runs as an experiment;
- <model>.json: the run's figures (validation score of the current and the best values, trials,
  pruned, time, the MLflow run), and the test metric of the last pipeline run for comparison.

params.yaml's defaults change only through a normal experiment and release: tuning writes a
patch, and nothing here touches params.yaml unless asked (--apply).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import yaml
from threadpoolctl import threadpool_limits

from songrec.config.manager import ConfigurationManager
from songrec.config.params import BoostingParams, RecommenderParams
from songrec.contract.features import numeric_features
from songrec.core.errors import ConfigError
from songrec.core.io import atomic_path, read_parquet, write_json
from songrec.core.progress import Progress, heartbeat
from songrec.orchestration.overrides import apply_params_overrides
from songrec.orchestration.tuning import (
    METRICS,
    MODELS,
    BoostingSplit,
    PlaylistSplit,
    boosting_split,
    make_study,
    objective,
    playlist_split,
    search,
    tuned_values,
)
from songrec.tracking.setup import configure

log = logging.getLogger(__name__)

DEFAULT_TRIALS = 30  # when neither a number of trials nor minutes is given
# Threads of the fits (OpenMP, BLAS). On 2 shared cores one thread per trial was faster than two:
# the second spent its time waiting in the kernel. Set through threadpoolctl:
# OMP_NUM_THREADS is read once, when numpy and scikit-learn load, before a command runs.
THREADS = 1
TUNING_DIR = Path("reports") / "tuning"


class MlflowTrialLog:
    """Each trial as an MLflow child run of the active (parent) run: its values as params, its
    validation score (with its history over boosting iterations) and its state as a tag."""

    def __init__(self, metric: str, echo: logging.Logger, level: int) -> None:
        self.metric, self.echo, self.level = f"val_{metric}", echo, level
        self.number = -1

    def start(self, number: int, params: Any) -> None:
        import mlflow

        self.number = number
        mlflow.start_run(run_name=f"trial {number}", nested=True)
        mlflow.log_params(dict(params))
        mlflow.set_tag("trial", str(number))

    def step(self, value: float, iterations: int) -> None:
        import mlflow

        mlflow.log_metric(self.metric, value, step=iterations)

    def end(self, state: str, value: float | None) -> None:
        import mlflow

        if value is not None and state == "complete":
            mlflow.log_metric(self.metric, value)
        mlflow.set_tag("trial_state", state)
        mlflow.end_run("FAILED" if state == "failed" else "FINISHED")
        shown = "-" if value is None else f"{value:.4f}"
        self.echo.log(self.level, "trial %d %s: %s %s", self.number, state, self.metric, shown)


def current_params(manager: ConfigurationManager, model: str) -> BoostingParams | RecommenderParams:
    config = manager.train()
    params: BoostingParams | RecommenderParams = getattr(config, model)
    return params


def prepare(manager: ConfigurationManager, model: str, seed: int) -> BoostingSplit | PlaylistSplit:
    """The validation split of `model` from the processed data (training rows only)."""
    config = manager.train()
    numeric = numeric_features(config.schema.audio_features)
    catalog = read_parquet(config.catalog)
    if model == "recommender":
        transform = manager.transform()
        split = playlist_split(
            catalog,
            read_parquet(config.memberships),
            numeric,
            seed,
            config.seed,
            transform.holdout_share,
            transform.min_playlist_tracks,
        )
        return replace(split, max_training_playlists=config.recommender.max_training_playlists)
    params = current_params(manager, model)
    assert isinstance(params, BoostingParams)
    return boosting_split(catalog, model, params, numeric, seed, config.seed)


def run_tuning(
    manager: ConfigurationManager,
    model: str,
    trials: int | None = None,
    minutes: float | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Search `model`'s params (trial 0: the current ones); write the patch and the report;
    return the report. Budget: `trials` trials and/or `minutes` (no trial starts after that)."""
    import mlflow

    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r} to tune; choose one of {', '.join(MODELS)}")
    if trials is None and minutes is None:
        trials = DEFAULT_TRIALS
    if (trials is not None and trials < 1) or (minutes is not None and minutes <= 0):
        raise ConfigError("the tuning budget needs trials >= 1 and/or minutes > 0")
    seed = manager.seed if seed is None else seed
    metric = METRICS[model]
    params = current_params(manager, model)
    if isinstance(params, RecommenderParams) and params.name != "hybrid":
        log.warning("train.recommender.name is %s: tuning the hybrid recommender's params", params.name)
    current = tuned_values(params)
    with heartbeat(f"preparing the {model} validation split", log):
        split = prepare(manager, model, seed)
    tracking = manager.tracking()
    configure(replace(tracking, experiment=f"{tracking.experiment}-tuning"))
    study = make_study(model, seed)
    started = time.monotonic()
    with (
        mlflow.start_run(run_name=f"tune {model}") as parent,
        Progress(trials, f"tuning {model}", log, unit="trials") as progress,
    ):
        mlflow.log_params(
            {
                "model": model,
                "metric": f"val_{metric}",
                "trials": trials,
                "minutes": minutes,
                "seed": seed,
                "sampler": "TPESampler",
                "pruner": type(study.pruner).__name__,
                **split_sizes(split),
            }
        )
        mlflow.set_tag("songrec.kind", "tuning")
        trial_log = MlflowTrialLog(metric, log, logging.DEBUG if progress.terminal else logging.INFO)

        def count(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
            complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
            best = f"{study.best_value:.4f}" if complete else "-"
            progress.update(best=best, pruned=pruned)

        with threadpool_limits(limits=THREADS):
            search(study, objective(model, split, trial_log), current, trials, minutes, callbacks=[count])
        report = summarize(manager, model, study, seed, trials, minutes, time.monotonic() - started)
        report.update(split_sizes(split), mlflow_run_id=parent.info.run_id)
        patch_file, report_file = write_result(manager.root, report)
        validation = report["validation"]
        mlflow.log_metrics(
            {
                f"current_val_{metric}": validation["current"],
                f"best_val_{metric}": validation["best"],
                f"gain_val_{metric}": validation["gain"],
                "pruned_trials": report["pruned"],
            }
        )
        mlflow.log_artifact(str(patch_file), artifact_path="tuning")
        mlflow.log_artifact(str(report_file), artifact_path="tuning")
    return report


def split_sizes(split: BoostingSplit | PlaylistSplit) -> dict[str, int]:
    if isinstance(split, BoostingSplit):
        return {"fit_tracks": len(split.fit_ids), "validation_tracks": len(split.val_ids)}
    fit = split.fit_memberships
    return {
        "fit_playlists": int(fit.loc[~fit["evaluation"].to_numpy(dtype=bool), "playlist_id"].nunique()),
        "validation_playlists": int(split.validation["playlist_id"].nunique()),
    }


def summarize(
    manager: ConfigurationManager,
    model: str,
    study: optuna.Study,
    seed: int,
    trials: int | None,
    minutes: float | None,
    seconds: float,
) -> dict[str, Any]:
    states = [t.state for t in study.trials]
    baseline, best = study.trials[0], study.best_trial
    assert baseline.value is not None and best.value is not None
    patch = patch_keys(model, best.user_attrs["params"])
    return {
        "model": model,
        "metric": METRICS[model],
        "seed": seed,
        "budget": {"trials": trials, "minutes": minutes},
        "trials": len(study.trials),
        "complete": states.count(optuna.trial.TrialState.COMPLETE),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "seconds": round(seconds, 1),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "validation": {"current": baseline.value, "best": best.value, "gain": best.value - baseline.value},
        "best_trial": best.number,
        "current_params": patch_keys(model, baseline.user_attrs["params"]),
        "best_params": patch,
        "patch": str(TUNING_DIR / f"{model}.yaml"),
        "dvc_command": dvc_command(patch),
        "test_before": test_metric(manager, model),
    }


def patch_keys(model: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"train.{model}.{key}": value for key, value in values.items()}


def dvc_command(patch: dict[str, Any]) -> str:
    return "dvc exp run " + " ".join(f"-S {key}={value}" for key, value in patch.items())


def test_metric(manager: ConfigurationManager, model: str) -> float | None:
    """The test metric of the last pipeline run (metrics/<model>.json), if there is one."""
    import json

    path = manager.evaluate().metric_files[model]
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    value = (
        data.get("songrec", {}).get("recall_at_100") if model == "recommender" else data.get(METRICS[model])
    )
    return None if value is None else float(value)


def write_result(root: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    model, metric, validation = report["model"], report["metric"], report["validation"]
    unchanged = report["best_params"] == report["current_params"]
    lines = [
        f"# songrec tune {model}: {report['trials']} trials ({report['pruned']} pruned),"
        f" seed {report['seed']}, {report['finished_at']}",
        f"# validation {metric}: {validation['current']:.4f} with the current params,"
        f" {validation['best']:.4f} with these (trial {report['best_trial']})",
        "# the current params were the best found: applying this changes nothing"
        if unchanged
        else f"# apply: songrec tune {model} --apply   or as an experiment:",
        f"#   {report['dvc_command']}",
    ]
    patch_file, report_file = root / report["patch"], root / TUNING_DIR / f"{model}.json"
    with atomic_path(patch_file, suffix=".yaml") as tmp:
        body = yaml.safe_dump(report["best_params"], sort_keys=False)
        tmp.write_text("\n".join(lines) + "\n" + body)
    write_json(report, report_file)
    return patch_file, report_file


def apply_tuned(manager: ConfigurationManager, model: str) -> dict[str, Any]:
    """Write reports/tuning/<model>.yaml into params.yaml (checked by the ConfigurationManager
    first, comments kept). Returns the changes, and the test metric before tuning and now."""
    import json

    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r} to tune; choose one of {', '.join(MODELS)}")
    patch_file = manager.root / TUNING_DIR / f"{model}.yaml"
    report_file = patch_file.with_suffix(".json")
    if not patch_file.exists():
        raise ConfigError(f"no tuning result for {model} ({patch_file}): run `songrec tune {model}` first")
    patch = yaml.safe_load(patch_file.read_text()) or {}
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    now = patch_keys(model, tuned_values(current_params(manager, model)))
    tuned_from = report.get("current_params", {})
    moved = sorted(k for k, v in tuned_from.items() if now.get(k) not in (v, patch.get(k)))
    changes = apply_params_overrides(patch, manager.root)
    if changes:
        report["applied_at"] = time.time()
        report["applied_changes"] = changes
        write_json(report, report_file)
    metrics_file = manager.evaluate().metric_files[model]
    fresh = metrics_file.exists() and metrics_file.stat().st_mtime > report.get("applied_at", float("inf"))
    return {
        "model": model,
        "changes": changes,
        "params_moved_since_tuning": moved,  # the validation gain was measured against other values
        "validation": report.get("validation"),
        "test_before": report.get("test_before"),
        "test_now": test_metric(manager, model) if fresh and not changes else None,
    }
