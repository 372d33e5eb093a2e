"""The app factory: `create_app(config)` builds the FastAPI app from the `serve` configuration.

What it wires together, each in its own module: the request models built from the data
contract (schemas), the model store and its source (model_store), the event store (events),
the metrics, the middleware (request id, rate limits, body limit and timeout, timing, request
log), the error handlers
and the routes. Nothing loads or connects before the app starts: the lifespan loads the model
(failing the start when there is nothing to serve), starts the model refresh and the event
writer, and stops both on shutdown.

Tests pass their own `model_source` (and `events`) and use the app with FastAPI's TestClient.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from songrec.config.stage_configs import ServeConfig
from songrec.core.errors import ConfigError
from songrec.models.bundle import SongrecBundle
from songrec.scoring.latest import LatestBatch
from songrec.serving import docs, errors
from songrec.serving.deps import ComputePool, RecentRequests, Services
from songrec.serving.metrics import Metrics
from songrec.serving.middleware import RequestMiddleware
from songrec.serving.model_store import ModelStore
from songrec.serving.monitoring_routes import monitoring_router
from songrec.serving.rate_limits import RateLimiter
from songrec.serving.routes import WEB, api_router, page_router
from songrec.serving.schemas import RequestModels, build_request_models
from songrec.store.request_log import EventStore
from songrec.tracking.model_source import ChampionSource, FileSource, ModelSource, ModelUnavailable

log = logging.getLogger(__name__)

DESCRIPTION = """\
songrec serves the registry's **champion** model bundle: playlist continuation, genre and
popularity predictions, catalog search, and feedback on what it recommended.

Every error is a JSON object whose `message` names the field and the problem. Every request to
the API is logged (with the tracks it returned) to the event store; feedback joins it by
`request_id`.
"""


def create_app(
    config: ServeConfig,
    model_source: ModelSource | None = None,
    *,
    events: EventStore | None = None,
) -> FastAPI:
    """The API and the web page over `config` (ConfigurationManager.serve()).

    Without `model_source`: config.bundle_file if set (SONGREC_BUNDLE, --bundle), else the
    registry's champion with the local bundle as fallback. Without `events`: the store at
    config.event_store_url, unless event logging is off.
    """
    models = build_request_models(config.schema, config)
    if model_source is None:
        model_source = (
            FileSource(config.bundle_file)
            if config.bundle_file is not None
            else ChampionSource(config.tracking, config.bundle)
        )
    events = events or EventStore(
        config.event_store_url,
        enabled=config.event_logging,
        hold_seconds=config.event_hold_seconds,
        spool_dir=config.event_spool_dir,
    )
    store = ModelStore(model_source, config.reload_interval_seconds, check=_servable(models))
    metrics = Metrics(store, events)
    services = Services(
        config=config,
        models=models,
        store=store,
        events=events,
        metrics=metrics,
        recent=RecentRequests(),
        compute=ComputePool(config.compute_threads, config.compute_short_ms / 1000),
        batches=LatestBatch(config.batch_dir) if config.batch_dir is not None else None,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.start()
        try:
            store.start()  # loads the model: the app does not start without one
        except Exception:
            events.stop()
            raise
        log.info("songrec API ready: model %s", store.current.version if store.current else None)
        try:
            yield
        finally:
            store.stop()
            events.stop()

    app = FastAPI(
        title="songrec",
        description=DESCRIPTION,
        version=_package_version(),
        lifespan=lifespan,
        docs_url=None,  # docs.install serves /docs with no CDN
        redoc_url=None,  # no ReDoc: it loads Redocly's logo from their CDN
    )
    app.state.services = services
    errors.install(app)
    app.add_middleware(
        RequestMiddleware,
        metrics=metrics,
        events=events,
        store=store,
        compute=services.compute,
        max_body_bytes=config.max_body_bytes,
        body_timeout_seconds=config.body_timeout_seconds,
        limits=RateLimiter(config.rate_limits, config.rate_limit_burst_seconds),
    )
    app.include_router(api_router(models, config))
    app.include_router(monitoring_router(config))
    app.include_router(page_router(config))
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    docs.install(app)
    _check_limited_routes(app, config.rate_limits)
    return app


def _check_limited_routes(app: FastAPI, rate_limits: Mapping[str, float]) -> None:
    """A ConfigError for a serve.rate_limits key that is no route of the API (a typo limits nothing)."""
    routes = {str(getattr(route, "path", "")) for route in app.routes}
    for route in rate_limits:
        if route not in routes:
            near = difflib.get_close_matches(route, sorted(routes), n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise ConfigError(f"config/config.yaml: serve.rate_limits.{route}: no such route{hint}")


def _servable(models: RequestModels) -> Callable[[SongrecBundle], None]:
    """A check that a bundle reads only the features a request can carry (run before a swap)."""

    def check(bundle: SongrecBundle) -> None:
        missing = [name for name in bundle.numeric_features if name not in models.feature_names]
        if missing:
            raise ModelUnavailable(
                f"the model reads features the request contract does not have: {missing}; "
                "its config/schema.yaml differs from the one this API was started with"
            )

    return check


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("songrec")
    except PackageNotFoundError:  # pragma: no cover
        return "0"
