"""The serving settings: ServeConfig (config/config.yaml `serve`) plus two environment switches.

- SONGREC_BUNDLE=<path>: serve this bundle file, without the registry (`songrec serve --bundle`
  sets the same thing); used for the 1,000,000-track benchmark and for a model not registered.
- SONGREC_EVENT_LOGGING=off: do not log requests to the event store (on by default).
- SONGREC_EVENT_HOLD_SECONDS=30: how long the request log may hold its writes while the API is
  busy with a burst of requests (events.EventStore); 0: write as events come.

Checked once at start: a bad value names the variable, the value and the rule.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from songrec.core.errors import ConfigError

ON = ("1", "true", "on", "yes")
OFF = ("0", "false", "off", "no")


@dataclass(frozen=True)
class ServingSettings:
    bundle: Path | None  # serve this file instead of the registry's champion
    event_logging: bool
    event_hold_seconds: float = 30.0

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, bundle: Path | None = None
    ) -> ServingSettings:
        env = os.environ if environ is None else environ
        raw_bundle = bundle if bundle is not None else (env.get("SONGREC_BUNDLE") or None)
        path = Path(raw_bundle).expanduser().resolve() if raw_bundle else None
        if path is not None and not path.is_file():
            raise ConfigError(f"environment: SONGREC_BUNDLE = {str(raw_bundle)!r}: no such file")
        logging_value = env.get("SONGREC_EVENT_LOGGING", "on").strip().lower()
        if logging_value not in ON + OFF:
            raise ConfigError(
                f"environment: SONGREC_EVENT_LOGGING = {logging_value!r}: "
                f"must be one of {', '.join(ON + OFF)}"
            )
        raw_hold = env.get("SONGREC_EVENT_HOLD_SECONDS", "30").strip()
        try:
            hold = float(raw_hold)
        except ValueError:
            hold = float("nan")
        if not 0 <= hold <= 3600:  # also NaN
            raise ConfigError(
                f"environment: SONGREC_EVENT_HOLD_SECONDS = {raw_hold!r}: "
                "must be a number of seconds from 0 to 3600"
            )
        return cls(bundle=path, event_logging=logging_value in ON, event_hold_seconds=hold)
