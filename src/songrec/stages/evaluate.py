"""evaluate: measure the bundle, log one MLflow run, register it, and gate its promotion.

Reads the catalog (its test split), the evaluation playlists, the bundle and the reference
model. Writes metrics/genre.json, metrics/popularity.json and metrics/recommender.json (for
`dvc metrics show`), plots/*.png (for `dvc plots show`), and reports/promotion.json. Playlist
continuation is measured for the bundle's recommender and, in the same run on the same hidden
tracks, for the reference system, most-popular and random.

In MLflow: one run (params, metrics, the dataset's source and sha256, plots, validation
report, the model), a new registered version with alias `challenger`, and alias `champion`
moved to it only if it is not worse than the current champion measured on the same data.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import yaml

from songrec import plots, tracking
from songrec.config import ConfigurationManager, EvaluateConfig
from songrec.evaluation import (
    bundle_metrics,
    continuation_metrics,
    genre_metrics,
    popularity_metrics,
    promotion_decision,
)
from songrec.io import read_json, read_parquet, require, write_json
from songrec.models.bundle import SongrecBundle
from songrec.models.recommender import MostPopularRecommender, RandomRecommender
from songrec.models.reference import ReferenceRecommender
from songrec.monitoring import history

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- pure core


def evaluate_offline(
    bundle: SongrecBundle,
    reference: Any,
    catalog: pd.DataFrame,
    eval_playlists: pd.DataFrame,
    ks: tuple[int, ...],
    seed: int,
) -> dict[str, Any]:
    """Every offline metric of one bundle, with the baselines on the same evaluation playlists."""
    test = catalog[catalog["split"] == "test"]
    genre = genre_metrics(bundle, test)
    popularity = popularity_metrics(bundle, test)
    index = pd.Index(catalog["track_id"])
    approaches = {
        "songrec": bundle.recommender,
        "reference": ReferenceRecommender(reference, catalog),
        "most_popular": MostPopularRecommender(catalog["popularity"].to_numpy()),
        "random": RandomRecommender(len(catalog), seed),
    }
    continuation = {
        name: continuation_metrics(recommender, index, eval_playlists, ks)
        for name, recommender in approaches.items()
    }
    top = max(ks)
    reference_recall = continuation["reference"][f"recall_at_{top}"]
    recommender_json: dict[str, Any] = {
        "recommender": bundle.recommender_name,
        "eval_playlists": int(eval_playlists["playlist_id"].nunique()),
        "hidden_tracks": int((eval_playlists["part"] == "hidden").sum()),
        **continuation,
        f"recall_at_{top}_vs_reference": (
            continuation["songrec"][f"recall_at_{top}"] / reference_recall if reference_recall > 0 else None
        ),
    }
    return {
        "genre": {"accuracy": genre["accuracy"], "macro_f1": genre["macro_f1"], "test_tracks": len(test)},
        "popularity": {"r2": popularity["r2"], "mae": popularity["mae"], "test_tracks": len(test)},
        "recommender": recommender_json,
        "_confusion": (genre["confusion_matrix"], genre["labels"]),
        "_popularity": (popularity["actual"], popularity["predicted"]),
    }


def gated_metrics(results: dict[str, Any]) -> dict[str, float]:
    """The flat metrics the promotion gate compares (bundle_metrics gives the same for a champion)."""
    return {
        "genre_accuracy": results["genre"]["accuracy"],
        "genre_macro_f1": results["genre"]["macro_f1"],
        "popularity_r2": results["popularity"]["r2"],
        "popularity_mae": results["popularity"]["mae"],
        **results["recommender"]["songrec"],
    }


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# --------------------------------------------------------------------------- runner


def write_outputs(config: EvaluateConfig, results: dict[str, Any]) -> None:
    for name, path in config.metric_files.items():
        write_json(results[name], path)
    matrix, labels = results["_confusion"]
    plots.confusion_matrix_plot(matrix, labels, config.plots_dir / "confusion_matrix.png")
    actual, predicted = results["_popularity"]
    plots.popularity_plot(actual, predicted, results["popularity"]["r2"], config.plots_dir / "popularity.png")
    continuation = {
        name: values for name, values in results["recommender"].items() if isinstance(values, dict)
    }
    plots.continuation_plot(continuation, config.k, config.plots_dir / "continuation.png")


def example_playlist(bundle: SongrecBundle) -> pd.DataFrame:
    """An input example for the logged model: three catalog tracks, by id."""
    return pd.DataFrame({"track_id": bundle.catalog["track_id"].iloc[:3].tolist()})


def log_run(
    config: EvaluateConfig, results: dict[str, Any], ingestion: dict[str, Any], catalog: pd.DataFrame
) -> tuple[str, str]:
    """One MLflow run with everything, and a new registered version. Returns (run id, version)."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    from songrec.models import mlflow_model

    tracking.configure(config.tracking)
    params = yaml.safe_load(config.params_file.read_text())
    metrics = {k: float(v) for k, v in flatten(gated_metrics(results)).items()}
    for name, values in results["recommender"].items():
        if isinstance(values, dict) and name != "songrec":
            metrics.update({f"{name}.{k}": float(v) for k, v in values.items()})
    bundle = joblib.load(config.bundle)
    with mlflow.start_run(run_name=f"pipeline {ingestion['sha256'][:8]}") as run:
        mlflow.log_params({k: str(v) for k, v in flatten(params).items()})
        mlflow.log_metrics(metrics)
        mlflow.set_tags(
            {
                "songrec.stage": "evaluate",
                "songrec.recommender": results["recommender"]["recommender"],
                "dataset.source": ingestion["source"],
                "dataset.sha256": ingestion["sha256"],
                "dataset.rows": str(ingestion["rows"]),
            }
        )
        with warnings.catch_warnings():  # a local path matches two equivalent MLflow source kinds
            warnings.simplefilter("ignore", UserWarning)
            dataset = from_pandas(
                catalog[["track_id", "genre", "split"]], source=ingestion["source"], name="catalog"
            )
        mlflow.log_input(dataset, context="training", tags={"sha256": ingestion["sha256"]})
        mlflow.log_artifacts(str(config.plots_dir), artifact_path="plots")
        mlflow.log_artifacts(str(config.metrics_dir), artifact_path="metrics")
        mlflow.log_artifact(str(config.validation_report), artifact_path="reports")
        mlflow.log_artifact(str(config.ingestion_record), artifact_path="reports")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(mlflow_model.__file__)),
            artifacts={"bundle": str(config.bundle)},
            pip_requirements=list(tracking.MODEL_REQUIREMENTS),
            signature=tracking.model_signature(bundle.numeric_features, config.integer_features),
            input_example=(example_playlist(bundle), {"task": "recommend", "k": 10}),
            registered_model_name=config.tracking.registered_model,
        )
        version = str(info.registered_model_version)
    return run.info.run_id, version


def promote(
    config: EvaluateConfig,
    version: str,
    challenger: dict[str, float],
    catalog: pd.DataFrame,
    eval_playlists: pd.DataFrame,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Alias the new version `challenger`; move `champion` to it if it is not worse."""
    name = config.tracking.registered_model
    tolerances = dict(config.promotion_tolerances)
    tracking.set_alias(name, tracking.CHALLENGER, version)
    current = tracking.version_by_alias(name, tracking.CHAMPION)
    champion_metrics, unmeasured = None, None
    if current is not None and str(current.version) != version:
        champion_metrics, unmeasured = _champion_metrics(
            name, current, catalog, eval_playlists, config.k, keys=challenger, needed=tolerances
        )
    promoted, reason = promotion_decision(challenger, champion_metrics, tolerances)
    if unmeasured is not None and champion_metrics is not None:
        reason = f"{reason} ({unmeasured})"
    elif unmeasured is not None:  # nothing to compare with (a registry down, say): keep what serves
        promoted, reason = False, f"not compared, so not promoted: {unmeasured}"
    if current is not None and str(current.version) == version:
        promoted, reason = True, "this version is already the champion"
    moved = promoted and (current is None or str(current.version) != version)
    if promoted:
        tracking.set_alias(name, tracking.CHAMPION, version)
        client = tracking.client()
        if current is not None and str(current.version) != version:
            client.set_model_version_tag(name, version, tracking.PREVIOUS_CHAMPION_TAG, str(current.version))
        client.set_model_version_tag(name, version, "promotion_reason", reason)
    if moved:
        history.record_move(
            config.event_store_url,
            name,
            "promote",
            None if current is None else str(current.version),
            version,
            reason,
            metrics_from=champion_metrics,
            metrics_to=challenger,
            run_id=run_id,
        )
    return {
        "model": name,
        "challenger_version": version,
        "champion_version_before": None if current is None else str(current.version),
        "champion_version_after": version if promoted else str(current.version) if current else None,
        "promoted": promoted,
        "reason": reason,
        "tolerances": tolerances,
        "challenger_metrics": {k: challenger[k] for k in sorted(challenger)},
        "champion_metrics": champion_metrics,
    }


def _champion_metrics(
    name: str,
    current: Any,
    catalog: pd.DataFrame,
    eval_playlists: pd.DataFrame,
    k: Sequence[int],
    keys: Iterable[str],
    needed: Iterable[str],
) -> tuple[dict[str, float] | None, str | None]:
    """The champion's gated metrics on this evaluation data; when this code cannot load or score
    it (a bundle pickled by classes that have changed since), the metrics its own run logged,
    with why (those of `keys`), or None when that run did not log every `needed` one."""
    log.info("measuring champion version %s on the same evaluation data", current.version)
    try:
        champion = tracking.load_bundle(f"models:/{name}/{current.version}")
        return bundle_metrics(champion, catalog, eval_playlists, k), None
    except Exception as exc:  # whatever the old pickle raises: the gate still has to decide
        problem = f"{type(exc).__name__}: {exc}"
    logged: dict[str, float] = {}
    if current.run_id:
        with contextlib.suppress(Exception):
            logged = dict(tracking.client().get_run(current.run_id).data.metrics)
    gated = all(key in logged for key in needed)
    log.warning(
        "champion version %s cannot be measured on this data (%s); %s",
        current.version,
        problem,
        "comparing with the metrics its own run logged" if gated else "nor can its logged metrics be read",
    )
    if not gated:
        return None, (
            f"champion version {current.version} could not be loaded or scored ({problem}), "
            "nor its logged metrics read"
        )
    return (
        {key: float(logged[key]) for key in keys if key in logged},
        f"champion version {current.version} could not be measured on this data ({problem}): "
        "compared with the metrics its own run logged",
    )


def run(manager: ConfigurationManager) -> dict[str, Any]:
    config = manager.evaluate()
    catalog = read_parquet(config.catalog)
    eval_playlists = read_parquet(config.eval_playlists)
    bundle: SongrecBundle = joblib.load(require(config.bundle))
    reference = joblib.load(require(config.reference_model))
    ingestion = read_json(config.ingestion_record)
    results = evaluate_offline(bundle, reference, catalog, eval_playlists, config.k, config.seed)
    write_outputs(config, results)
    run_id, version = log_run(config, results, ingestion, catalog)
    decision = promote(config, version, gated_metrics(results), catalog, eval_playlists, run_id)
    decision = {
        "run_id": run_id,
        "tracking_uri": tracking.redact(config.tracking.uri),
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **decision,
    }
    write_json(decision, config.promotion_report)
    log.info(
        "run %s, version %s: %s (%s)",
        run_id,
        version,
        "promoted to champion" if decision["promoted"] else "kept as challenger",
        decision["reason"],
    )
    return {
        "run_id": run_id,
        "version": version,
        "promoted": decision["promoted"],
        "reason": decision["reason"],
    }
