"""Per-client rate limits: a token bucket per (client address, route).

Each route in serve.rate_limits allows a client `per_second` requests a second on average, and a
burst of `burst_seconds` times that at once; a request beyond gets 429 with Retry-After (the
seconds until a token is back). Buckets live in this process only: behind several API replicas
each enforces its own share, which is what a per-replica limit protects (its CPU).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping

# Buckets of clients idle this long are full again anyway: forgetting them bounds the memory.
FORGET_AFTER_SECONDS = 300.0


class RateLimiter:
    def __init__(
        self,
        per_second: Mapping[str, float],
        burst_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = {route: rate for route, rate in per_second.items() if rate > 0}
        self.burst_seconds = burst_seconds
        self.clock = clock
        self._exact = {route for route in self.per_second if "{" not in route}
        # A template such as /playlists/{playlist_id}/recommendations matches one path segment per name.
        self._templates = [
            (re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(route)) + "$"), route)
            for route in self.per_second
            if "{" in route
        ]
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, when)
        self._swept = clock()

    def route_of(self, path: str) -> str | None:
        """The limited route this path is a request to, if any."""
        if path in self._exact:
            return path
        for pattern, route in self._templates:
            if pattern.match(path):
                return route
        return None

    def retry_after(self, route: str, client: str) -> int | None:
        """None when the request may go on (it takes a token); else the seconds to wait."""
        rate = self.per_second.get(route)
        if rate is None:
            return None
        now = self.clock()
        capacity = max(rate * self.burst_seconds, 1.0)
        tokens, when = self._buckets.get((route, client), (capacity, now))
        tokens = min(capacity, tokens + (now - when) * rate)
        if tokens >= 1.0:
            self._buckets[(route, client)] = (tokens - 1.0, now)
            self._sweep(now)
            return None
        self._buckets[(route, client)] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / rate))

    def _sweep(self, now: float) -> None:
        if now - self._swept < FORGET_AFTER_SECONDS:
            return
        self._swept = now
        idle = [key for key, (_, when) in self._buckets.items() if now - when > FORGET_AFTER_SECONDS]
        for key in idle:
            del self._buckets[key]
