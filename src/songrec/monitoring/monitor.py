"""`songrec monitor`: drift and online quality of recent traffic, written to the store.

Reads the window's /recommend requests, their recommendations and feedback, and the tracks
labelled since the window started; compares the tracks the playlists held (and the labelled
new ones) with the served model's catalog (its training reference) using Evidently; computes
hit rate, playlist-to-recommendation similarity and genre accuracy per day and model version;
writes an HTML report under reports/monitoring/, a drift_runs row, online_quality rows, and
alerts when drift or quality crosses its threshold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from songrec.config.stage_configs import MonitorConfig
from songrec.core.progress import heartbeat
from songrec.core.sources import filesystem
from songrec.models.bundle import SongrecBundle
from songrec.monitoring import quality
from songrec.monitoring.alerts import raise_alert
from songrec.monitoring.drift import DriftResult, detect_drift
from songrec.store.engine import connect
from songrec.store.queries import insert_row, mark_exported, read_labels, read_window, replace_quality
from songrec.store.schema import drift_runs, retraining_decisions

log = logging.getLogger(__name__)

MIN_DRIFT_ROWS = 30  # below this, a drift test says more about chance than about the data


@dataclass
class MonitorResult:
    window_start: datetime
    window_end: datetime
    model_version: str
    n_requests: int
    n_current: int
    drift: DriftResult | None
    hit_rate: float | None
    recommended_with_feedback: int
    genre_accuracy: float | None
    mean_similarity: float | None
    report_path: Path | None
    drift_run_id: int | None
    seconds: float
    alerts: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "window": [self.window_start.isoformat(), self.window_end.isoformat()],
            "model_version": self.model_version,
            "requests": self.n_requests,
            "tracks_compared": self.n_current,
            "dataset_drift": None if self.drift is None else self.drift.dataset_drift,
            "drift_share": None if self.drift is None else round(self.drift.drift_share, 4),
            "drifted_features": [] if self.drift is None else self.drift.drifted,
            "hit_rate": self.hit_rate,
            "recommended_with_feedback": self.recommended_with_feedback,
            "genre_accuracy": self.genre_accuracy,
            "mean_similarity": self.mean_similarity,
            "report": None if self.report_path is None else str(self.report_path),
            "drift_run_id": self.drift_run_id,
            "alerts": self.alerts,
            "seconds": round(self.seconds, 2),
        }

    def describe(self) -> str:
        """The summary for a person: the drift verdict, the quality figures, alerts, the report."""

        def share(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.1%}"

        if self.drift is None:
            verdict = f"not tested ({self.n_current} tracks in the window, fewer than {MIN_DRIFT_ROWS})"
        else:
            state = "DRIFT" if self.drift.dataset_drift else "no drift"
            drifted = ", ".join(self.drift.drifted) or "none"
            verdict = f"{state}: {self.drift.drift_share:.0%} of features drifted ({drifted})"
        lines = [
            f"monitoring of model {self.model_version}, "
            f"{self.window_start:%Y-%m-%d %H:%M} to {self.window_end:%Y-%m-%d %H:%M} UTC",
            f"  requests         {self.n_requests} ({self.n_current} tracks compared with the training data)",
            f"  data drift       {verdict}",
            f"  hit rate         {share(self.hit_rate)} of the {self.recommended_with_feedback} "
            "recommended tracks with feedback",
            f"  genre accuracy   {share(self.genre_accuracy)} on labelled new tracks",
            f"  alerts           {'; '.join(self.alerts) if self.alerts else 'none'}",
            f"  report           {self.report_path or 'none (no drift test)'}",
        ]
        return "\n".join(lines)


def run_monitor(
    config: MonitorConfig,
    bundle: SongrecBundle,
    model_version: str,
    now: datetime | None = None,
) -> MonitorResult:
    started = time.perf_counter()
    end = now or datetime.now(UTC)
    start = end - timedelta(hours=config.window_hours)
    drift_share, min_hit_rate = config.drift_share, config.min_hit_rate
    engine = connect(config.event_store_url)
    numeric = list(bundle.numeric_features)
    with heartbeat(f"reading the window {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC", log):
        window = read_window(engine, start, end, config.max_window_requests)
    requests = window["requests"]
    labelled = read_labels(engine, since=start)
    labelled = labelled[pd.to_datetime(labelled["time"], utc=True) < end] if not labelled.empty else labelled
    labelled_rows = _label_features(labelled, numeric)

    parts = [
        quality.window_tracks(requests, bundle.catalog, numeric),
        labelled_rows[numeric].astype("float64"),
    ]
    current = pd.concat([part for part in parts if not part.empty] or parts[:1], ignore_index=True)
    reference = bundle.catalog[numeric].sample(
        n=min(config.reference_sample, len(bundle.catalog)), random_state=config.seed
    )
    drift = None
    report = None
    if len(current) >= MIN_DRIFT_ROWS:
        stamp = end.strftime("%Y%m%dT%H%M%SZ")
        report = config.reports_dir / f"drift-{stamp}.html"
        with heartbeat(f"drift test of {len(current)} tracks against {len(reference)} (Evidently)", log):
            drift = detect_drift(reference, current, numeric, drift_share, report)
    else:
        log.info("drift test skipped: %d tracks in the window, fewer than %d", len(current), MIN_DRIFT_ROWS)

    hits = quality.hit_rates(requests, window["recommendations"], window["feedback"])
    mean = reference.to_numpy(dtype=np.float64).mean(axis=0)
    scale = reference.to_numpy(dtype=np.float64).std(axis=0)
    scale[scale == 0] = 1.0
    similarity = quality.playlist_similarity(
        requests, window["recommendations"], bundle.catalog, numeric, mean, scale
    )
    predicted = bundle.predict_genre(labelled_rows)["genre"].tolist() if len(labelled_rows) else []
    genre = quality.genre_accuracy(
        labelled.iloc[: len(predicted)] if len(predicted) else labelled.iloc[:0], predicted
    )
    computed_at = datetime.now(UTC)
    replace_quality(
        engine, quality.quality_rows(requests, hits, similarity, genre, model_version, computed_at)
    )

    with_feedback = int(hits["recommended_with_feedback"].sum()) if not hits.empty else 0
    hit_rate = float(hits["hits"].sum()) / with_feedback if with_feedback else None
    accuracy = (
        float(genre["genre_correct"].sum()) / max(int(genre["labelled_tracks"].sum()), 1)
        if len(genre)
        else None
    )
    run_id = insert_row(
        engine,
        drift_runs,
        {
            "time": computed_at,
            "window_start": start,
            "window_end": end,
            "model_version": model_version,
            "reference": f"catalog of model v{model_version} ({len(reference)} tracks sampled)",
            "n_reference": len(reference),
            "n_current": len(current),
            "n_requests": len(requests),
            "drift_share": None if drift is None else drift.drift_share,
            "drift_threshold": drift_share,
            "dataset_drift": bool(drift and drift.dataset_drift),
            "features": None if drift is None else drift.features,
            "report_path": None if report is None else str(report),
        },
    )
    result = MonitorResult(
        window_start=start,
        window_end=end,
        model_version=model_version,
        n_requests=len(requests),
        n_current=len(current),
        drift=drift,
        hit_rate=hit_rate,
        recommended_with_feedback=with_feedback,
        genre_accuracy=accuracy,
        mean_similarity=float(similarity["similarity"].mean()) if not similarity.empty else None,
        report_path=report,
        drift_run_id=run_id,
        seconds=0.0,
    )
    if drift is not None and drift.dataset_drift:
        message = (
            f"data drift: {drift.drift_share:.0%} of features drifted (threshold {drift_share:.0%}): "
            f"{', '.join(drift.drifted)}; report {report}"
        )
        raise_alert(
            engine, "drift", "drift_share", drift.drift_share, drift_share, message, config.alert_webhook_url
        )
        result.alerts.append(message)
    if hit_rate is not None and with_feedback >= config.min_feedback and hit_rate < min_hit_rate:
        message = (
            f"online hit rate {hit_rate:.2%} below {min_hit_rate:.2%} "
            f"({with_feedback} recommended tracks with feedback)"
        )
        raise_alert(engine, "quality", "hit_rate", hit_rate, min_hit_rate, message, config.alert_webhook_url)
        result.alerts.append(message)
    engine.dispose()
    result.seconds = time.perf_counter() - started
    log.info("monitor: %s", result.summary())
    return result


def serving_model(manager: Any) -> tuple[SongrecBundle, str]:
    """The model the API serves: the registry's champion, else the local bundle (as the API does)."""
    from songrec.tracking.model_source import ChampionSource

    source = ChampionSource(manager.tracking(), manager.serve().bundle)
    ref = source.locate()
    return source.load(ref), ref.version


def _label_features(labelled: pd.DataFrame, numeric: list[str]) -> pd.DataFrame:
    """Model inputs of labelled tracks, from their rows (the source format)."""
    from songrec.contract.features import release_year

    if labelled.empty:
        return pd.DataFrame(columns=[*numeric, "track_artist", "track_album_id"])
    rows = pd.DataFrame(list(labelled["row"]))
    rows["year"] = release_year(rows["track_album_release_date"])
    return rows


def with_overrides(config: MonitorConfig, overrides: Mapping[str, Any]) -> MonitorConfig:
    """`config` with the thresholds a run sets (None or absent: config.yaml's value stands)."""
    known = {"window_hours", "drift_share", "min_hit_rate", "retrain_on_drift"}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown monitoring settings {sorted(unknown)}; known: {sorted(known)}")
    return replace(config, **{key: value for key, value in overrides.items() if value is not None})


def retraining_decision(summary: dict[str, Any], config: MonitorConfig) -> tuple[bool, str]:
    """Whether monitoring should trigger retraining, and why (or why not)."""
    min_hit_rate, min_feedback = config.min_hit_rate, config.min_feedback
    reasons = []
    if config.retrain_on_drift and summary.get("dataset_drift"):
        drifted = summary["drifted_features"]
        reasons.append(f"data drift in {len(drifted)} features ({', '.join(drifted)})")
    hit_rate = summary.get("hit_rate")
    if (
        hit_rate is not None
        and summary.get("recommended_with_feedback", 0) >= min_feedback
        and hit_rate < min_hit_rate
    ):
        reasons.append(f"online hit rate {hit_rate:.2%} below {min_hit_rate:.2%}")
    if reasons:
        return True, "; ".join(reasons)
    detail = (
        "no dataset drift" if summary.get("dataset_drift") is False else "too little traffic for a drift test"
    )
    if hit_rate is None:
        return False, f"{detail}; no feedback yet"
    return False, f"{detail}; hit rate {hit_rate:.2%} not below {min_hit_rate:.2%}"


def record_decision(config: MonitorConfig, summary: dict[str, Any], triggered: bool, reason: str) -> None:
    engine = connect(config.event_store_url)
    insert_row(
        engine,
        retraining_decisions,
        {
            "time": datetime.now(UTC),
            "drift_run_id": summary.get("drift_run_id"),
            "triggered": triggered,
            "reason": reason,
            "hit_rate": summary.get("hit_rate"),
            "dataset_drift": summary.get("dataset_drift"),
        },
    )
    engine.dispose()


def export_labels(config: MonitorConfig, stamp: str) -> dict[str, Any]:
    """Write labelled tracks not yet exported into the incoming folder, as source rows.

    Retraining then takes them in like any other new data (deduplicated by key).
    """
    engine = connect(config.event_store_url)
    pending = read_labels(engine, unexported=True)
    if pending.empty:
        engine.dispose()
        return {"exported": 0, "file": None}
    rows = pd.DataFrame(list(pending["row"]))
    target = f"{config.incoming.rstrip('/')}/labels-{stamp}.csv"
    files, path = filesystem(target, config.s3_endpoint_url)
    files.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with files.open(path, "w") as handle:
        rows.to_csv(handle, index=False)
    mark_exported(engine, pending["id"].tolist(), datetime.now(UTC))
    engine.dispose()
    log.info("exported %d labelled tracks to %s", len(rows), target)
    return {"exported": len(rows), "file": target}
