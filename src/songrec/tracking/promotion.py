"""The promotion gate: alias a new version `challenger`, and move `champion` to it only if it is
not worse than the current champion measured on the same evaluation data.

A champion this code cannot load or score (a bundle pickled by classes that have changed
since) is compared by the metrics its own run logged; with nothing to compare the champion
stays. Every move of `champion` is recorded in the promotion history.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from songrec.config.stage_configs import EvaluateConfig
from songrec.evaluation.gate import promotion_decision
from songrec.evaluation.metrics import measure_bundle
from songrec.tracking.history import record_move
from songrec.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION_TAG,
    load_bundle,
    set_alias,
    version_by_alias,
)
from songrec.tracking.setup import mlflow_client

log = logging.getLogger(__name__)


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
    set_alias(name, CHALLENGER, version)
    current = version_by_alias(name, CHAMPION)
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
        set_alias(name, CHAMPION, version)
        client = mlflow_client()
        if current is not None and str(current.version) != version:
            client.set_model_version_tag(name, version, PREVIOUS_CHAMPION_TAG, str(current.version))
        client.set_model_version_tag(name, version, "promotion_reason", reason)
    if moved:
        record_move(
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
        champion = load_bundle(f"models:/{name}/{current.version}")
        return measure_bundle(champion, catalog, eval_playlists, k).gated, None
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
        return None, (
            f"champion version {current.version} could not be loaded or scored ({problem}), "
            "nor its logged metrics read"
        )
    return (
        {key: float(logged[key]) for key in keys if key in logged},
        f"champion version {current.version} could not be measured on this data ({problem}): "
        "compared with the metrics its own run logged",
    )
