"""evaluate: measure the bundle, log one MLflow run, register it, and gate its promotion.

Reads the catalog (its test split), the visible memberships, the evaluation playlists, the
bundle and the reference model. Writes metrics/genre.json, metrics/popularity.json and
metrics/recommender.json (for `dvc metrics show`), plots/*.png (for `dvc plots show`), and
reports/promotion.json. Playlist continuation is measured for the bundle's recommender and, in
the same run on the same hidden tracks, for the reference system, most-popular, random and
plain item co-occurrence. Slices (evaluation/slices.py) show cold start (test tracks of
unseen artists), the hidden tracks co-occurrence can reach or not, and how varied lists are.

In MLflow: one run (params, metrics, the dataset's source and sha256, plots, validation
report, the model), a new registered version with alias `challenger`, and alias `champion`
moved to it only if it is not worse than the current champion measured on the same data.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from songrec.config.manager import ConfigurationManager
from songrec.config.stage_configs import EvaluateConfig
from songrec.core.hashing import at_most
from songrec.core.io import load_model, read_json, read_parquet, require, write_json
from songrec.core.progress import heartbeat
from songrec.evaluation.bootstrap import Interval, intervals
from songrec.evaluation.metrics import (
    continuation_metrics,
    continuation_of,
    mean_of,
    measure_bundle,
    rank_playlists,
)
from songrec.evaluation.plots import (
    confusion_matrix_plot,
    continuation_plot,
    diversity_tradeoff_plot,
    popularity_plot,
)
from songrec.evaluation.slices import (
    artist_slices,
    diversity,
    diversity_tradeoff,
    recall_by_reach,
    with_reach,
)
from songrec.models.bundle import SongrecBundle
from songrec.models.recommender.base import Recommender
from songrec.models.recommender.baselines import (
    CooccurrenceRecommender,
    MostPopularRecommender,
    RandomRecommender,
)
from songrec.models.reference import ReferenceRecommender
from songrec.tracking.lineage import run_lineage
from songrec.tracking.promotion import register_candidate
from songrec.tracking.registry import MODEL_REQUIREMENTS, model_signature
from songrec.tracking.setup import configure, mlflow_client, redact

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- pure core


def evaluate_offline(
    bundle: SongrecBundle,
    reference: Any,
    catalog: pd.DataFrame,
    eval_playlists: pd.DataFrame,
    ks: tuple[int, ...],
    seed: int,
    memberships: pd.DataFrame,
) -> dict[str, Any]:
    """Every offline metric of one bundle, with the baselines on the same evaluation playlists."""
    measured = measure_bundle(bundle, catalog, eval_playlists, ks)
    genre, popularity = measured.genre, measured.popularity
    index = pd.Index(catalog["track_id"])
    cooccurrence = CooccurrenceRecommender(index, memberships, catalog["popularity"].to_numpy())
    baselines: dict[str, Recommender] = {
        "reference": ReferenceRecommender(reference, catalog),
        "most_popular": MostPopularRecommender(catalog["popularity"].to_numpy()),
        "random": RandomRecommender(len(catalog), seed),
    }
    top = max(ks)
    cooccurrence_rankings = rank_playlists(cooccurrence, index, eval_playlists, top)
    continuation = {
        "songrec": measured.continuation,
        **{
            name: continuation_metrics(recommender, index, eval_playlists, ks)
            for name, recommender in baselines.items()
        },
        "cooccurrence": mean_of(continuation_of(cooccurrence_rankings, ks)),
    }
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
    # 95% bootstrap intervals of the headline metrics: over test tracks, over evaluation playlists.
    spans = intervals(measured.evidence, ["genre_macro_f1", "popularity_r2", *measured.per_playlist], seed)
    recommender_json["songrec_ci95"] = {name: _span(spans[name]) for name in measured.per_playlist}
    # Slices: co-occurrence-reachable hidden tracks or not, and how varied the lists are (as
    # served: with the bundle's diversity setting), and what each other setting would give.
    # Each list was ranked once (by measure_bundle, as served, and above); reachability is counted
    # once per playlist and shared.
    songrec_lists = with_reach(measured.rankings, cooccurrence)
    cooccurrence_lists = [
        replace(entry, ranked=ranking.ranked)
        for entry, ranking in zip(
            songrec_lists, (r for r in cooccurrence_rankings if len(r.targets)), strict=True
        )
    ]
    recommender_json["by_reach"] = {
        "songrec": recall_by_reach(songrec_lists, top),
        "cooccurrence": recall_by_reach(cooccurrence_lists, top),
    }
    recommender_json["diversity"] = {
        "songrec": diversity(songrec_lists, catalog),
        "cooccurrence": diversity(cooccurrence_lists, catalog),
    }
    recommender_json["max_per_artist"] = bundle.max_per_artist
    recommender_json["diversity_tradeoff"] = diversity_tradeoff(
        bundle.recommender, index, eval_playlists, catalog, top
    )
    by_artist = artist_slices(measured.evidence, catalog, seed)
    test_tracks = measured.test_tracks
    return {
        "genre": {
            "accuracy": genre["accuracy"],
            "macro_f1": genre["macro_f1"],
            "macro_f1_ci95": _span(spans["genre_macro_f1"]),
            "test_tracks": test_tracks,
            **{
                name: {k: v for k, v in part.items() if not k.startswith("popularity_r2")}
                for name, part in by_artist.items()
            },
        },
        "popularity": {
            "r2": popularity["r2"],
            "r2_ci95": _span(spans["popularity_r2"]),
            "mae": popularity["mae"],
            "test_tracks": test_tracks,
            **{
                name: {k: v for k, v in part.items() if not k.startswith("genre_macro_f1")}
                for name, part in by_artist.items()
            },
        },
        "recommender": recommender_json,
        "gated": measured.gated,
        "continuation": continuation,
        "_measured": measured,
        "_confusion": (genre["confusion_matrix"], genre["labels"]),
        "_popularity": (popularity["actual"], popularity["predicted"]),
    }


def sampled_playlists(eval_playlists: pd.DataFrame, max_playlists: int | None, seed: int) -> pd.DataFrame:
    """The evaluation playlists, whole; on a large catalog a seeded sample of `max_playlists` of
    them (the same for every model measured on this data: the gate compares like with like)."""
    playlists = eval_playlists["playlist_id"].drop_duplicates()
    if max_playlists is None or len(playlists) <= max_playlists:
        return eval_playlists
    kept = playlists[at_most(playlists, max_playlists, seed, "evaluation")]
    log.info(
        "evaluating on %d of %d evaluation playlists (evaluate.max_playlists)", len(kept), len(playlists)
    )
    return eval_playlists[eval_playlists["playlist_id"].isin(kept).to_numpy()].reset_index(drop=True)


def _span(found: Interval) -> dict[str, float]:
    return {"low": found.low, "high": found.high}


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
    confusion_matrix_plot(matrix, labels, config.plots_dir / "confusion_matrix.png")
    actual, predicted = results["_popularity"]
    popularity_plot(actual, predicted, results["popularity"]["r2"], config.plots_dir / "popularity.png")
    continuation_plot(results["continuation"], config.k, config.plots_dir / "continuation.png")
    recommender = results["recommender"]
    diversity_tradeoff_plot(
        recommender["diversity_tradeoff"],
        max(config.k),
        recommender["max_per_artist"],
        config.plots_dir / "diversity_tradeoff.png",
    )


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

    configure(config.tracking)
    params = yaml.safe_load(config.params_file.read_text())
    metrics = {k: float(v) for k, v in flatten(results["gated"]).items()}
    for name, values in results["continuation"].items():
        if name != "songrec":
            metrics.update({f"{name}.{k}": float(v) for k, v in values.items()})
    for name, span in flatten(
        {
            "genre_macro_f1": results["genre"]["macro_f1_ci95"],
            "popularity_r2": results["popularity"]["r2_ci95"],
            **results["recommender"]["songrec_ci95"],
        }
    ).items():
        metrics[f"{name.replace('.', '_ci95_')}"] = float(span)
    bundle = load_model(config.bundle)
    lineage = run_lineage(config)
    with mlflow.start_run(run_name=lineage.run_name) as run:
        mlflow.log_params({k: str(v) for k, v in flatten(params).items()})
        mlflow.log_metrics(metrics)
        mlflow.set_tags(
            {
                "songrec.stage": "evaluate",
                "songrec.recommender": results["recommender"]["recommender"],
                "dataset.source": ingestion["source"],
                "dataset.sha256": ingestion["sha256"],
                "dataset.rows": str(ingestion["rows"]),
                **lineage.tags,
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
            pip_requirements=list(MODEL_REQUIREMENTS),
            signature=model_signature(bundle.numeric_features, config.integer_features),
            input_example=(example_playlist(bundle), {"task": "recommend", "k": 10}),
            registered_model_name=config.tracking.registered_model,
        )
        version = str(info.registered_model_version)
    mlflow_client().update_model_version(
        config.tracking.registered_model, version, description=lineage.describe(run.info.run_id, params)
    )
    return run.info.run_id, version


def run(manager: ConfigurationManager) -> dict[str, Any]:
    config = manager.evaluate()
    catalog = read_parquet(config.catalog)
    eval_playlists = sampled_playlists(read_parquet(config.eval_playlists), config.max_playlists, config.seed)
    memberships = read_parquet(config.memberships, columns=["track_id", "playlist_id"])
    bundle: SongrecBundle = load_model(require(config.bundle))
    reference = load_model(require(config.reference_model))
    ingestion = read_json(config.ingestion_record)
    with heartbeat("measuring the bundle and the baselines on the evaluation data", log):
        results = evaluate_offline(
            bundle, reference, catalog, eval_playlists, config.k, config.seed, memberships
        )
    with heartbeat("writing metrics and plots", log):
        write_outputs(config, results)
    with heartbeat("logging the run and registering the model in MLflow", log):
        run_id, version = log_run(config, results, ingestion, catalog)
    with heartbeat("the promotion gate", log):
        decision = register_candidate(config, version, results["_measured"], catalog, eval_playlists, run_id)
    decision = {
        "run_id": run_id,
        "tracking_uri": redact(config.tracking.uri),
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
