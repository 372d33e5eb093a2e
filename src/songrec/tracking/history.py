"""Promotion history and rollback of the registry's `champion` alias.

Every move of `champion` (a promotion by the evaluate stage's gate, or `songrec rollback`) is
recorded in the store: when, from which version to which, why, and the metrics on both sides.
The registry keeps the chain as well: a promoted version carries the tag `previous_champion`.
Recording is best effort: an unreachable store is logged and never fails a pipeline run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from songrec.config.manager import ConfigurationManager
from songrec.core.errors import SongrecError
from songrec.tracking.registry import CHAMPION, PREVIOUS_CHAMPION_TAG, set_alias, version_by_alias
from songrec.tracking.setup import configure, mlflow_client

log = logging.getLogger(__name__)


def record_move(
    store_url: str,
    model: str,
    action: str,
    from_version: str | None,
    to_version: str,
    reason: str,
    metrics_from: dict[str, Any] | None = None,
    metrics_to: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> bool:
    """Add one move of `champion` to the store; False (and a warning) if the store is unreachable."""
    from songrec.store.engine import connect
    from songrec.store.queries import insert_row
    from songrec.store.schema import promotions

    try:
        engine = connect(store_url)
        insert_row(
            engine,
            promotions,
            {
                "time": datetime.now(UTC),
                "model": model,
                "action": action,
                "from_version": from_version,
                "to_version": to_version,
                "reason": reason,
                "metrics_from": metrics_from,
                "metrics_to": metrics_to,
                "run_id": run_id,
            },
        )
        engine.dispose()
        return True
    except Exception as exc:
        log.warning("could not record the %s of %s v%s in the store: %s", action, model, to_version, exc)
        return False


def rollback(manager: ConfigurationManager, to_version: str | None = None) -> dict[str, Any]:
    """Move `champion` back to the version it replaced (or to `to_version`)."""
    config = manager.tracking()
    configure(config)
    name = config.registered_model
    current = version_by_alias(name, CHAMPION)
    if current is None:
        raise SongrecError(f"registered model {name!r} has no champion to roll back")
    target = to_version or current.tags.get(PREVIOUS_CHAMPION_TAG)
    if not target:
        raise SongrecError(
            f"{name} v{current.version} replaced no earlier champion; name one with --to VERSION"
        )
    if str(target) == str(current.version):
        raise SongrecError(f"v{target} is already the champion")
    client = mlflow_client()
    client.get_model_version(name, str(target))  # raises if the version does not exist
    set_alias(name, CHAMPION, str(target))
    reason = f"rollback from v{current.version}"
    client.set_model_version_tag(name, str(target), "promotion_reason", reason)
    recorded = record_move(
        manager.serve().event_store_url, name, "rollback", str(current.version), str(target), reason
    )
    log.info("champion of %s moved back from v%s to v%s", name, current.version, target)
    return {
        "model": name,
        "from_version": str(current.version),
        "to_version": str(target),
        "recorded": recorded,
    }
