"""What routes depend on: the app's services, the model serving now, the admin check.

The dependencies are `async def` on purpose: they only read attributes, and an async
dependency runs on the event loop instead of taking a trip through the thread pool.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from songrec.config.stage_configs import ServeConfig
from songrec.scoring.latest import LatestBatch
from songrec.serving.errors import ApiError
from songrec.serving.metrics import Metrics
from songrec.serving.model_store import ModelStore, ServedModel
from songrec.serving.schemas import RequestModels
from songrec.store.request_log import EventStore

T = TypeVar("T")


@dataclass
class Answered:
    """What one request returned, and the feedback already taken on it."""

    tracks: frozenset[str]
    feedback: set[tuple[str, str]] = field(default_factory=set)  # (track id, event)


class RecentRequests:
    """The last requests this process answered, with the tracks each returned, so feedback can
    be checked without the store: it must name a returned track, and a (track, event) pair is
    taken once per request (which also caps a request's feedback at 4 events per track)."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._answered: OrderedDict[uuid.UUID, Answered] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, request_id: uuid.UUID, track_ids: Iterable[str] = ()) -> None:
        with self._lock:
            self._answered[request_id] = Answered(frozenset(track_ids))
            if len(self._answered) > self.size:
                self._answered.popitem(last=False)

    def get(self, request_id: uuid.UUID) -> Answered | None:
        return self._answered.get(request_id)

    def take_feedback(self, answered: Answered, track_id: str, event: str) -> bool:
        """True the first time this (track, event) comes for the request; False after."""
        with self._lock:
            if (track_id, event) in answered.feedback:
                return False
            answered.feedback.add((track_id, event))
            return True

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._answered


class ComputePool:
    """Where answers are computed: on the event loop when the work is short or the request is
    the only one in the server, else in `size` threads (serve.compute_threads; 0: always on
    the event loop).

    Short work (a route whose answers recently took under `short_seconds` of CPU, as the
    shipped catalog's recommendations do) is computed on the loop: a thread hand-over costs
    about as much again, so the loop answers more requests than the threads do. Long work (a
    catalog of a million tracks) goes to the threads when others wait, which keeps the loop
    taking requests in order: computed on the loop, its tail latency under concurrent clients
    was several times worse. Alone, even long work is computed on the loop (no hand-over to
    wait for). A request only shows itself to `requests_in_server` once the loop has read it,
    so before computing on the loop the answer yields to it once: without that, each request
    ran whole in one step of the loop, always found itself alone, and concurrent clients were
    served one by one. Few threads, not FastAPI's 40: many threads fighting over the GIL
    answer fewer requests than two. Other blocking routes (a model reload, a feedback look-up)
    keep FastAPI's pool, so they never hold up a recommendation. bench/serving.py measures
    all of this.
    """

    def __init__(self, size: int, short_seconds: float = 0.002) -> None:
        self.size = size
        self.short_seconds = short_seconds
        self.requests_in_server = 0  # kept by middleware.RequestMiddleware
        self._limiter: anyio.CapacityLimiter | None = None
        self._in_threads = 0  # answers handed to the threads and not yet back
        # Per function, a moving average of the CPU seconds an answer takes (thread CPU time:
        # waiting for the GIL in a busy thread does not count).
        self._cpu_seconds: dict[Callable[..., Any], float] = {}

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        if self.size == 0 or self._short(function):
            return self._timed(function, *args)
        if self._alone():
            await asyncio.sleep(0)  # let the loop read what else has come in
            if self._alone():
                return self._timed(function, *args)
        if self._limiter is None:  # created on the event loop, at first use
            self._limiter = anyio.CapacityLimiter(self.size)
        self._in_threads += 1
        try:
            return await anyio.to_thread.run_sync(self._timed, function, *args, limiter=self._limiter)
        finally:
            self._in_threads -= 1

    def _short(self, function: Callable[..., Any]) -> bool:
        """Short work, or not yet measured (its first answer is computed on the loop)."""
        return self._cpu_seconds.get(function, 0.0) < self.short_seconds

    def _timed(self, function: Callable[..., T], *args: Any) -> T:
        started = time.thread_time()
        try:
            return function(*args)
        finally:
            seconds = time.thread_time() - started
            previous = self._cpu_seconds.get(function)
            self._cpu_seconds[function] = (
                seconds if previous is None else previous + 0.1 * (seconds - previous)
            )

    def _alone(self) -> bool:
        return self.requests_in_server <= 1 and self._in_threads == 0


@dataclass(frozen=True)
class Services:
    """Everything one app owns, built by create_app and kept in app.state.services."""

    config: ServeConfig
    models: RequestModels
    store: ModelStore
    events: EventStore
    metrics: Metrics
    recent: RecentRequests
    compute: ComputePool
    batches: LatestBatch | None = None  # songrec batch's latest recommendations


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_model(request: Request) -> ServedModel:
    """The model serving now, read once: the whole request answers from this object."""
    current = request.app.state.services.store.current
    if current is None:
        raise ApiError(
            503, "no model is loaded yet; see /ready", type_="not_ready", headers={"Retry-After": "1"}
        )
    model: ServedModel = current
    return model


ModelDep = Annotated[ServedModel, Depends(get_model)]

bearer = HTTPBearer(auto_error=False, description="The token in the server's SONGREC_ADMIN_TOKEN.")


async def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    _require_bearer(
        request.app.state.services.config.admin_token, credentials, "admin", "SONGREC_ADMIN_TOKEN"
    )


async def require_labeler(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    token = request.app.state.services.config.labeler_token
    _require_bearer(token, credentials, "labels", "SONGREC_LABELER_TOKEN")


def _require_bearer(
    token: str | None, credentials: HTTPAuthorizationCredentials | None, routes: str, variable: str
) -> None:
    """401 unless the bearer token is `token` (compared in constant time); no token: closed."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if not token:
        raise ApiError(
            401,
            f"{routes} routes are closed: the server was started without {variable}",
            loc=["header", "Authorization"],
            type_="unauthorized",
            headers=challenge,
        )
    if credentials is None:
        raise ApiError(
            401,
            "a bearer token is required",
            loc=["header", "Authorization"],
            type_="unauthorized",
            headers=challenge,
        )
    if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
        raise ApiError(
            401,
            "the bearer token is not valid",
            loc=["header", "Authorization"],
            type_="unauthorized",
            headers=challenge,
        )


def note(request: Request, **values: Any) -> None:
    """Tell the request log (middleware.RequestMiddleware) what this request asked and got."""
    noted = request.scope.setdefault("state", {}).setdefault("log", {})
    noted.update(values)


def request_id(request: Request) -> uuid.UUID:
    value: uuid.UUID = request.scope["state"]["request_id"]
    return value
