"""When the request log holds its deliveries from the writer: during a burst of requests."""

from __future__ import annotations


class BurstHold:
    """Whether the shipper holds the events: while the API is busy, for at most `seconds` and
    `max_held` events per burst; after that, until the burst ends, they go as they come."""

    def __init__(self, seconds: float, max_held: int) -> None:
        self.seconds = seconds
        self.max_held = max_held
        self.since: float | None = None  # when the current burst began
        self.spent = False  # the current burst has used its hold

    def holds(self, busy: bool, held: int, now: float) -> bool:
        if not busy:
            self.since, self.spent = None, False
            return False
        if self.since is None:
            self.since = now
        if self.spent or now - self.since >= self.seconds or held >= self.max_held:
            self.spent = True
            return False
        return True
