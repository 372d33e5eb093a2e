"""The end-of-pipeline summary: the key metrics and where to look next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from songrec.config.manager import ConfigurationManager
from songrec.core.errors import StageInputMissing
from songrec.core.io import read_json


def pipeline_summary(manager: ConfigurationManager) -> str:
    config = manager.evaluate()
    files = config.metric_files
    try:
        genre = read_json(files["genre"])
        popularity = read_json(files["popularity"])
        recommender = read_json(files["recommender"])
        promotion = read_json(config.promotion_report)
    except StageInputMissing as exc:
        return f"no pipeline results yet ({exc}): run `make run` or `dvc repro`"
    top = max(config.k)
    rows = [
        ("genre macro-F1 (test split)", genre["macro_f1"]),
        ("genre accuracy", genre["accuracy"]),
        ("popularity R²", popularity["r2"]),
        ("popularity MAE", popularity["mae"]),
    ]
    for name in ("songrec", "reference", "most_popular", "random"):
        rows.append((f"Recall@{top} {name}", recommender[name][f"recall_at_{top}"]))
    rows.append(("NDCG@10 songrec", recommender["songrec"]["ndcg_at_10"]))
    ratio = recommender.get(f"recall_at_{top}_vs_reference")
    lines = ["", "songrec pipeline results", "-" * 44]
    lines += [f"{label:<32} {_number(value)}" for label, value in rows]
    if ratio is not None:
        lines.append(f"{'Recall@' + str(top) + ' vs reference':<32} {ratio:.1f}x")
    decision = "promoted to champion" if promotion["promoted"] else "kept as challenger"
    lines += [
        "-" * 44,
        f"last run: {promotion['model']} v{promotion['challenger_version']} {decision}",
        f"  ({promotion['reason']})",
        f"MLflow run {promotion['run_id']} at {promotion['tracking_uri']}",
        champion_line(manager),
        "",
        "Next:",
        "  make metrics    all metrics (dvc metrics show)",
        "  make ui         the MLflow UI on this store",
        "  make serve      the API and web page on the champion",
        f"The plots are PNG files in {manager.relative(config.plots_dir)}/. The tools (dvc, mlflow, songrec)",
        "are in .venv/bin: `source .venv/bin/activate` calls them by name.",
    ]
    return "\n".join(lines)


def champion_line(manager: ConfigurationManager) -> str:
    """Which version the registry serves now (a rollback or a later run may have moved it)."""
    from songrec.tracking.registry import CHAMPION, version_by_alias
    from songrec.tracking.setup import configure, redact

    tracking = manager.tracking()
    name = tracking.registered_model
    if tracking.backend == "local" and not Path(tracking.uri.removeprefix("sqlite:///")).exists():
        return f"registry: no local MLflow store yet ({tracking.uri})"
    try:
        configure(tracking, create_experiment=False)
        current = version_by_alias(name, CHAMPION)
    except Exception as exc:  # a registry that cannot be read is worth a line, not a crash
        return f"registry {redact(tracking.uri)} unavailable: {type(exc).__name__}"
    if current is None:
        return f"registry: {name} has no {CHAMPION} yet"
    return f"serving now: {name} v{current.version} (the registry's {CHAMPION})"


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
