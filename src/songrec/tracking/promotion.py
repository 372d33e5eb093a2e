"""Candidates and releases: a pipeline run registers a candidate; a release moves `champion`.

- `register_candidate` (the evaluate stage, after every run: make run, dvc repro, dvc exp run,
  a manual Airflow run): aliases the new version `challenger` and reports what the gate would
  decide, but never moves `champion`, except when there is none yet (so that a fresh machine
  serves after `make run`).
- `release` (`songrec promote`, and the production path: songrec_retraining, and
  songrec_training when triggered with `release`): measures the candidate and the champion on
  the current evaluation data, and moves `champion` only if the gate (evaluation.gate) passes,
  or when forced with a reason. Every move is recorded with its reason (tracking.history) and
  raises the high-water mark of the best champion seen on that data (a registered-model tag).

A champion this code cannot load or score (a bundle saved by another version of songrec) is
compared by the metrics its own run logged; with nothing to compare the champion stays.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from songrec.config.manager import ConfigurationManager
from songrec.config.stage_configs import EvaluateConfig
from songrec.core.errors import SongrecError
from songrec.core.io import read_parquet, write_json
from songrec.evaluation.gate import GateDecision, gate, raised_high_water
from songrec.evaluation.metrics import BundleResults, evaluation_digest, measure_bundle
from songrec.tracking.history import record_move
from songrec.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION_TAG,
    load_bundle,
    set_alias,
    version_by_alias,
)
from songrec.tracking.setup import configure, mlflow_client

log = logging.getLogger(__name__)

HIGH_WATER_TAG = "songrec.best_on_{digest}"  # the best champion's metrics on one evaluation data set


@dataclass(frozen=True)
class Judgement:
    """The gate's decision, and the champion's metrics it compared with (None: nothing to compare)."""

    decision: GateDecision
    champion_metrics: dict[str, float] | None


def register_candidate(
    config: EvaluateConfig,
    version: str,
    results: BundleResults,
    catalog: pd.DataFrame,
    eval_playlists: pd.DataFrame,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Alias the new version `challenger`; release it only if there is no champion yet."""
    name = config.tracking.registered_model
    set_alias(name, CHALLENGER, version)
    current = version_by_alias(name, CHAMPION)
    if current is None:
        first = GateDecision(True, "no champion yet: the first version serves", ())
        digest = evaluation_digest(catalog, eval_playlists)
        return _move(config, name, version, None, first, results, digest, run_id)
    if str(current.version) == version:
        same = GateDecision(True, "this version is already the champion", ())
        return _report(name, version, current, same, results.gated, None, released=False)
    judged = judge(config, name, current, results, catalog, eval_playlists)
    outcome = "would promote it" if judged.decision.passed else "would keep the champion"
    reason = (
        f"registered as a candidate, not released: the gate {outcome} ({judged.decision.reason}); "
        f"`songrec promote --version {version}` releases it"
    )
    report = _report(name, version, current, judged.decision, results.gated, judged.champion_metrics, False)
    return {**report, "reason": reason}


def release(
    config: EvaluateConfig,
    catalog: pd.DataFrame,
    eval_playlists: pd.DataFrame,
    version: str | None = None,
    force_reason: str | None = None,
) -> dict[str, Any]:
    """Move `champion` to `version` (default: the challenger) if the gate passes on this data,
    or whatever the gate says when `force_reason` is given (recorded)."""
    name = config.tracking.registered_model
    configure(config.tracking, create_experiment=False)
    if version is None:
        challenger = version_by_alias(name, CHALLENGER)
        if challenger is None:
            raise SongrecError(f"{name} has no {CHALLENGER}: run the pipeline first, or name --version")
        version = str(challenger.version)
    mlflow_client().get_model_version(name, version)  # raises if the version does not exist
    current = version_by_alias(name, CHAMPION)
    log.info("measuring candidate version %s on the evaluation data", version)
    candidate = measure_bundle(load_bundle(f"models:/{name}/{version}"), catalog, eval_playlists, config.k)
    digest = evaluation_digest(catalog, eval_playlists)
    if current is not None and str(current.version) == version:
        same = GateDecision(False, "this version is already the champion", ())
        return _report(name, version, current, same, candidate.gated, None, released=False)
    if current is None:
        decision = GateDecision(True, "no champion yet", ())
        return _move(config, name, version, None, decision, candidate, digest)
    judged = judge(config, name, current, candidate, catalog, eval_playlists)
    decision, action = judged.decision, "promote"
    if force_reason is not None:
        action = "force"
        decision = GateDecision(
            True, f"forced ({force_reason}); the gate said: {judged.decision.reason}", judged.decision.metrics
        )
    if not decision.passed:
        return _report(name, version, current, decision, candidate.gated, judged.champion_metrics, False)
    return _move(
        config,
        name,
        version,
        current,
        decision,
        candidate,
        digest,
        action=action,
        before=judged.champion_metrics,
    )


def release_in_workspace(
    manager: ConfigurationManager, version: str | None = None, force_reason: str | None = None
) -> dict[str, Any]:
    """`release` on the workspace's evaluation data (data/processed); the decision is written to
    reports/release.json (not a DVC output: a release never makes the pipeline stale)."""
    config = manager.evaluate()
    decision = {
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **release(
            config, read_parquet(config.catalog), read_parquet(config.eval_playlists), version, force_reason
        ),
    }
    write_json(decision, config.promotion_report.with_name("release.json"))
    return decision


def judge(
    config: EvaluateConfig,
    name: str,
    current: Any,
    candidate: BundleResults,
    catalog: pd.DataFrame,
    eval_playlists: pd.DataFrame,
) -> Judgement:
    """The gate between `candidate` and the current champion, both measured on this data."""
    tolerances = dict(config.promotion_tolerances)
    champion, unmeasured = _champion_results(name, current, catalog, eval_playlists, config.k, tolerances)
    if champion is None and unmeasured is not None and unmeasured[0] is None:
        return Judgement(GateDecision(False, f"not compared, so not promoted: {unmeasured[1]}", ()), None)
    digest = evaluation_digest(catalog, eval_playlists)
    best = high_water(name, digest)
    if champion is not None:
        champion_metrics = champion.gated
        best = best or {m: champion_metrics[m] for m in tolerances}
        decision = gate(
            candidate.gated,
            champion_metrics,
            tolerances,
            candidate_evidence=candidate.evidence,
            champion_evidence=champion.evidence,
            best_seen=best,
            seed=config.seed,
        )
        return Judgement(decision, champion_metrics)
    assert unmeasured is not None
    logged, why = unmeasured
    assert logged is not None
    decision = gate(candidate.gated, logged, tolerances, best_seen=best, seed=config.seed)
    return Judgement(GateDecision(decision.passed, f"{decision.reason} ({why})", decision.metrics), logged)


def high_water(name: str, digest: str) -> dict[str, float]:
    """The best champion's metrics seen on this evaluation data ({} when none yet)."""
    with contextlib.suppress(Exception):
        tags = mlflow_client().get_registered_model(name).tags
        return {
            k: float(v) for k, v in json.loads(tags.get(HIGH_WATER_TAG.format(digest=digest), "{}")).items()
        }
    return {}


def _move(
    config: EvaluateConfig,
    name: str,
    version: str,
    current: Any,
    decision: GateDecision,
    candidate: BundleResults,
    digest: str,
    run_id: str | None = None,
    action: str = "promote",
    before: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Make `version` the champion: alias, tags, history, and the high-water mark of the data
    `digest` names; `before` is the champion's metrics on that data."""
    champion_metrics = before
    before_version = None if current is None else str(current.version)
    set_alias(name, CHAMPION, version)
    client = mlflow_client()
    if before_version is not None:
        client.set_model_version_tag(name, version, PREVIOUS_CHAMPION_TAG, before_version)
    client.set_model_version_tag(name, version, "promotion_reason", decision.reason)
    metrics = list(dict(config.promotion_tolerances))
    best = raised_high_water(high_water(name, digest), candidate.gated, metrics)
    client.set_registered_model_tag(name, HIGH_WATER_TAG.format(digest=digest), json.dumps(best))
    record_move(
        config.event_store_url,
        name,
        action,
        before_version,
        version,
        decision.reason,
        metrics_from=champion_metrics,
        metrics_to=candidate.gated,
        run_id=run_id,
    )
    log.info("champion of %s: v%s -> v%s (%s)", name, before_version, version, decision.reason)
    return _report(name, version, current, decision, candidate.gated, champion_metrics, released=True)


def _report(
    name: str,
    version: str,
    current: Any,
    decision: GateDecision,
    candidate: dict[str, float],
    champion_metrics: dict[str, float] | None,
    released: bool,
) -> dict[str, Any]:
    before = None if current is None else str(current.version)
    return {
        "model": name,
        "challenger_version": version,
        "champion_version_before": before,
        "champion_version_after": version if released else before,
        "promoted": released,
        "reason": decision.reason,
        "gate": decision.as_dict(),
        "challenger_metrics": {k: candidate[k] for k in sorted(candidate)},
        "champion_metrics": champion_metrics,
    }


def _champion_results(
    name: str,
    current: Any,
    catalog: pd.DataFrame,
    eval_playlists: pd.DataFrame,
    k: Iterable[int],
    needed: Iterable[str],
) -> tuple[BundleResults | None, tuple[dict[str, float] | None, str] | None]:
    """The champion measured on this data; when this code cannot load or score it, the metrics
    its own run logged and why (None for those when that run did not log every `needed` one)."""
    log.info("measuring champion version %s on the same evaluation data", current.version)
    try:
        champion = load_bundle(f"models:/{name}/{current.version}")
        return measure_bundle(champion, catalog, eval_playlists, list(k)), None
    except Exception as exc:  # whatever the old pickle raises: the gate still has to decide
        problem = f"{type(exc).__name__}: {exc}"
    logged: dict[str, float] = {}
    if current.run_id:
        with contextlib.suppress(Exception):
            logged = dict(mlflow_client().get_run(current.run_id).data.metrics)
    gated = all(key in logged for key in needed)
    log.warning(
        "champion version %s cannot be measured on this data (%s); %s",
        current.version,
        problem,
        "comparing with the metrics its own run logged" if gated else "nor can its logged metrics be read",
    )
    if not gated:
        why = f"champion version {current.version} could not be loaded or scored ({problem})"
        return None, (None, f"{why}, nor its logged metrics read")
    return None, (
        {key: float(value) for key, value in logged.items()},
        f"champion version {current.version} could not be measured on this data ({problem}): "
        "compared with the metrics its own run logged",
    )
