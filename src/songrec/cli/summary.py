"""The end-of-pipeline summary: the key metrics and where to look next."""

from __future__ import annotations

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
        f"model {promotion['model']} v{promotion['challenger_version']}: {decision} ({promotion['reason']})",
        f"MLflow run {promotion['run_id']} at {promotion['tracking_uri']}",
        "",
        "Next:",
        "  dvc metrics show                 all metrics (dvc metrics diff after a change)",
        "  dvc plots show                   confusion matrix, popularity and continuation plots",
        f"  {_ui_command(manager)}",
        "  songrec serve                    the API and web page on the champion",
    ]
    return "\n".join(lines)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _ui_command(manager: ConfigurationManager) -> str:
    tracking = manager.tracking()
    if tracking.backend == "local":
        return f"mlflow ui --backend-store-uri {tracking.uri} --port 5000   the MLflow UI"
    return f"open {tracking.uri}   the MLflow UI"
