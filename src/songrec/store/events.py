"""The events the request log keeps: a served request (with the tracks it returned) and feedback.

Events are pickled on the API's side as they come (`pack_event`) and unpickled by the writer
process; request ids are time-ordered UUIDs.
"""

from __future__ import annotations

import os
import pickle
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# Statuses of requests whose time went to waiting on the client, not to answering it: a body
# that did not arrive in time (408) and a client that left before its body ended (499, nginx's).
CLIENT_TIMEOUT = 408
CLIENT_GONE = 499


def new_request_id() -> uuid.UUID:
    """A time-ordered UUID (the version 7 layout: milliseconds since the epoch, then random bits).

    Request ids key the requests and recommendations tables; ids that grow with time land at
    the end of those indexes instead of at random pages, which keeps writes cheap as tables grow.
    """
    millis = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")
    value = (millis & (2**48 - 1)) << 80 | 0x7 << 76 | (random >> 62 & 0xFFF) << 64 | 0b10 << 62
    return uuid.UUID(int=value | random & (2**62 - 1))


@dataclass(frozen=True)
class RequestEvent:
    """One served request, as the requests table (and, for /recommend, recommendations) keep it."""

    request_id: uuid.UUID
    endpoint: str
    status: int
    latency_ms: float
    model_version: str | None = None
    input_track_ids: Sequence[str] | None = None
    input_tracks: Sequence[Mapping[str, Any]] | None = None
    k: int | None = None
    recommendations: Sequence[tuple[int, str, float]] = ()  # (rank, track_id, score)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class FeedbackEvent:
    request_id: uuid.UUID
    track_id: str
    event: str
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class EventStats:
    """What the store did with the events it was given (read by /metrics)."""

    logged: int = 0
    dropped: int = 0
    dropped_queue_full: int = 0  # the buffer was full (the store down for long, or too slow)
    dropped_shutdown: int = 0  # neither written nor spooled when the API stopped (no spool)
    batches: int = 0
    writer_restarts: int = 0
    replayed: int = 0  # taken from the spools of API processes that died


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_MICROSECOND = timedelta(microseconds=1)


def pack_event(event: RequestEvent | FeedbackEvent) -> bytes:
    """The event pickled as plain values, several times cheaper than pickling the dataclass with
    its UUID and datetime. At concurrency 1 this is on the path to the next request."""
    moment = (event.time - _EPOCH) // _MICROSECOND  # exact, where a float timestamp is not
    if isinstance(event, FeedbackEvent):
        return pickle.dumps((False, event.request_id.bytes, event.track_id, event.event, moment))
    return pickle.dumps(
        (
            True,
            event.request_id.bytes,
            event.endpoint,
            event.status,
            event.latency_ms,
            event.model_version,
            event.input_track_ids,
            event.input_tracks,
            event.k,
            event.recommendations,
            moment,
        )
    )


def unpack_event(data: bytes) -> RequestEvent | FeedbackEvent:
    values = pickle.loads(data)
    request_id, when = uuid.UUID(bytes=values[1]), _EPOCH + values[-1] * _MICROSECOND
    if not values[0]:
        return FeedbackEvent(request_id, values[2], values[3], time=when)
    endpoint, status, latency_ms, version, track_ids, tracks, k, recommendations = values[2:-1]
    return RequestEvent(
        request_id, endpoint, status, latency_ms, version, track_ids, tracks, k, recommendations, time=when
    )
