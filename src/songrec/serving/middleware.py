"""The ASGI middleware around every request: id, body limit, metrics and the request log.

A plain ASGI middleware (not Starlette's BaseHTTPMiddleware, which costs a task and a copy of
the response per request). For each HTTP request it:
- gives it a request id (scope state `request_id`, response header `x-request-id`);
- refuses a client over its rate for the route (serve.rate_limits) with 429 and Retry-After;
- refuses a body larger than serve.max_body_bytes with 413, before any parsing, and one that
  has not arrived within serve.body_timeout_seconds with 408 (and closes the connection);
- times it, counts it in the Prometheus metrics by route template;
- for the API's routes, puts a RequestEvent on the event store's queue (never waits for it),
  with what the route noted in `request.state.log` (model version, inputs, recommendations).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from songrec.serving.deps import ComputePool
from songrec.serving.metrics import Metrics
from songrec.serving.model_store import ModelStore
from songrec.serving.rate_limits import RateLimiter
from songrec.store.events import CLIENT_GONE, CLIENT_TIMEOUT, RequestEvent, new_request_id
from songrec.store.request_log import EventStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Routes whose requests go to the event store (health checks, metrics, docs and the page do not).
LOGGED_ROUTES = frozenset(
    {"/recommend", "/predict/genre", "/predict/popularity", "/tracks", "/feedback", "/admin/reload"}
)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        events: EventStore,
        store: ModelStore,
        compute: ComputePool,
        max_body_bytes: int,
        body_timeout_seconds: float,
        limits: RateLimiter,
    ) -> None:
        self.app = app
        self.compute = compute
        self.metrics = metrics
        self.events = events
        self.store = store
        self.max_body_bytes = max_body_bytes
        self.body_timeout_seconds = body_timeout_seconds
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        header = (b"x-request-id", str(request_id).encode())
        status = 500
        self.compute.requests_in_server += 1  # on the event loop only: no lock needed

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            if (route := self.limits.route_of(scope["path"])) is not None:
                state["route"] = route
                if (wait := self.limits.retry_after(route, _client(scope))) is not None:
                    self.metrics.rate_limited.labels(route).inc()
                    status = 429
                    await _refuse(
                        send_with_id,
                        429,
                        f"more than {self.limits.per_second[route]:g} requests per second to {route} "
                        "from this address (serve.rate_limits)",
                        "rate_limited",
                        loc="client",
                        headers=[(b"retry-after", str(wait).encode())],
                    )
                    return
            if scope["method"] in BODY_METHODS:
                try:
                    async with asyncio.timeout(self.body_timeout_seconds):
                        body, problem = await self._read_body(scope, receive)
                except TimeoutError:
                    body, problem = (
                        b"",
                        (
                            CLIENT_TIMEOUT,
                            f"the body did not arrive within {self.body_timeout_seconds:g} s",
                            "timeout",
                        ),
                    )
                if problem is not None:
                    if problem[0] == CLIENT_GONE:  # nobody to answer
                        status = CLIENT_GONE
                        return
                    close = [(b"connection", b"close")] if problem[0] == CLIENT_TIMEOUT else []
                    await _refuse(send_with_id, *problem, headers=close)
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, send_with_id)
        finally:
            self.compute.requests_in_server -= 1
            self._record(scope, state, request_id, status, time.perf_counter() - started)

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, tuple[int, str, str] | None]:
        limit = self.max_body_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return b"", (400, "content-length is not a number", "invalid_header")
                if declared > limit:
                    return b"", (
                        413,
                        f"the request body has {declared} bytes; at most {limit} are accepted",
                        "too_large",
                    )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", (CLIENT_GONE, "the client closed the connection before its body ended", "gone")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return b"", (413, f"the request body is larger than {limit} bytes", "too_large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), None

    def _record(
        self,
        scope: Scope,
        state: MutableMapping[str, Any],
        request_id: uuid.UUID,
        status: int,
        seconds: float,
    ) -> None:
        endpoint = _endpoint(scope)
        self.metrics.observe(endpoint, scope["method"], status, seconds)
        # Rate-limited requests are counted (songrec_rate_limited_total), not logged: a greedy
        # client must not be able to fill the event store with its refusals.
        if endpoint not in LOGGED_ROUTES or status == 429:
            return
        noted: dict[str, Any] = state.get("log") or {}
        version = noted.get("model_version")
        if version is None and (current := self.store.current) is not None:
            version = current.version
        self.events.log_request(
            RequestEvent(
                request_id=request_id,
                endpoint=endpoint,
                status=status,
                latency_ms=seconds * 1000.0,
                model_version=version,
                input_track_ids=noted.get("track_ids"),
                input_tracks=noted.get("tracks"),
                k=noted.get("k"),
                recommendations=noted.get("recommendations", ()),
            )
        )


async def _refuse(
    send: Send,
    status: int,
    message: str,
    kind: str,
    *,
    loc: str = "body",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """An error answer in the API's error shape, sent before the app sees the request."""
    body = json.dumps(
        {"message": f"{loc}: {message}", "detail": [{"loc": [loc], "msg": message, "type": kind}]}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _endpoint(scope: Scope) -> str:
    """The route template (a label of bounded cardinality), even for a request refused before routing."""
    route = scope.get("route")
    path = str(scope.get("path", ""))
    if route is not None and getattr(route, "path", None):
        return str(route.path)
    if (template := scope.get("state", {}).get("route")) is not None:
        return str(template)
    if path in LOGGED_ROUTES:
        return path
    return "/static" if path.startswith("/static/") else "unmatched"


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the already-read body once, then waits on the real channel."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
