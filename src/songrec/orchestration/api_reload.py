"""Ask the serving API to load the current champion (after retraining); never raises."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def request_reload(api_url: str | None, token: str | None, timeout: float = 30.0) -> dict[str, Any]:
    """Ask the serving API to load the current champion; never raises (the API may be down)."""
    if not api_url:
        return {"requested": False, "reason": "no serving API configured (SONGREC_API_URL)"}
    import requests

    url = f"{api_url.rstrip('/')}/admin/reload"
    try:
        response = requests.post(url, headers={"Authorization": f"Bearer {token or ''}"}, timeout=timeout)
    except requests.RequestException as exc:
        log.warning("could not ask %s to reload: %s", url, exc)
        return {"requested": True, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    ok = response.status_code < 400
    (log.info if ok else log.warning)(
        "reload %s -> HTTP %d %s", url, response.status_code, response.text[:200]
    )
    return {"requested": True, "ok": ok, "status": response.status_code, "body": response.text[:500]}
