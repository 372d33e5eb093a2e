"""Alerts: a log line always, a webhook POST when SONGREC_ALERT_WEBHOOK_URL is set, a row in the store.

Delivery never raises: a webhook that is down is logged and recorded, and monitoring goes on.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from songrec.store.queries import insert_row
from songrec.store.schema import alerts

log = logging.getLogger(__name__)


def raise_alert(
    engine: Engine,
    kind: str,
    metric: str,
    value: float | None,
    threshold: float | None,
    message: str,
    webhook_url: str | None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    log.warning("ALERT [%s] %s", kind, message)
    payload = {
        "source": "songrec",
        "kind": kind,
        "metric": metric,
        "value": value,
        "threshold": threshold,
        "message": message,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    delivery = "log only"
    if webhook_url:
        delivery = deliver(webhook_url, payload, timeout)
    alert = {**payload, "time": datetime.now(UTC), "delivery": delivery}
    try:
        insert_row(
            engine,
            alerts,
            {k: alert[k] for k in ("time", "kind", "metric", "value", "threshold", "message", "delivery")},
        )
    except Exception as exc:  # the store being down must not hide the alert
        log.error("could not record the alert in the store: %s", exc)
    return alert


def deliver(url: str, payload: dict[str, Any], timeout: float) -> str:
    import requests

    try:
        response = requests.post(url, json=payload, timeout=timeout)
    except requests.RequestException as exc:
        log.error("alert webhook %s failed: %s", url.split("?")[0], exc)
        return f"webhook failed: {type(exc).__name__}"
    if response.status_code >= 400:
        log.error("alert webhook %s answered HTTP %d", url.split("?")[0], response.status_code)
        return f"webhook HTTP {response.status_code}"
    return f"webhook HTTP {response.status_code}"
