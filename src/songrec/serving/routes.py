"""The routes: recommendations, predictions, catalog search, feedback, health, metrics, admin, page.

The routes that compute hand their work (the `answer_*` functions of answers.py) to the compute
pool, one thread per CPU (deps.ComputePool); the others are plain `def` in FastAPI's pool, or
`async` when they only read. Each reads the serving model once, through ModelDep. The request models are
built from the data contract when the app is created, so the routes are built then too
(`api_router(models, config)`): each route's `body` gets the app's model (see `_accepts`).
"""

# No `from __future__ import annotations` here: FastAPI evaluates the routes' annotations, and
# some of them use values that exist only inside api_router (this app's configured limits).
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from songrec.config.stage_configs import ServeConfig
from songrec.serving.answers import (
    answer_genre,
    answer_playlist,
    answer_popularity,
    answer_recommend,
    answer_search,
)
from songrec.serving.deps import ModelDep, ServicesDep, require_admin
from songrec.serving.errors import ApiError, error_responses
from songrec.serving.metrics import resident_mib
from songrec.serving.schemas import (
    BatchRequest,
    FeedbackRequest,
    FeedbackResponse,
    GenreResponse,
    HealthResponse,
    PlaylistRecommendations,
    PopularityResponse,
    ReadyResponse,
    RecommendRequest,
    RecommendResponse,
    ReloadResponse,
    RequestModels,
    SearchResponse,
)
from songrec.store.events import FeedbackEvent
from songrec.tracking.model_source import ModelUnavailable

WEB = Path(__file__).parent / "web"
F = TypeVar("F", bound=Callable[..., Any])


def _accepts(model: type[BaseModel]) -> Callable[[F], F]:
    """Give the route's `body` parameter the app's request model (built from the data contract).

    The route is written against the static base class (RecommendRequest, ...), which is what
    its code relies on; FastAPI validates and documents the subclass with the contract's ranges.
    """

    def decorate(endpoint: F) -> F:
        endpoint.__annotations__ = {**endpoint.__annotations__, "body": model}
        return endpoint

    return decorate


def api_router(models: RequestModels, config: ServeConfig) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/recommend",
        response_model=RecommendResponse,
        responses=error_responses(400, 413, 422, 503),
        tags=["recommendations"],
        summary="Recommend tracks to continue a playlist",
    )
    @_accepts(models.recommend)
    async def recommend(
        body: RecommendRequest, request: Request, served: ModelDep, services: ServicesDep
    ) -> dict[str, Any]:
        """The k catalog tracks that best continue the playlist, best first, never one of its own.

        The playlist is catalog `track_ids` and/or `tracks` given by their audio features (for
        songs the catalog does not know). Ids the catalog does not know are listed in
        `unknown_track_ids`; a playlist made only of unknown ids is a 422 that lists them.
        """
        return await services.compute.run(answer_recommend, body, request, served)

    @router.post(
        "/predict/genre",
        response_model=GenreResponse,
        responses=error_responses(400, 413, 422, 503),
        tags=["predictions"],
        summary="Predict the genre of tracks",
    )
    @_accepts(models.batch)
    async def predict_genre(
        body: BatchRequest, request: Request, served: ModelDep, services: ServicesDep
    ) -> dict[str, Any]:
        """The genre of each track (catalog ids first, then feature rows) with every genre's probability."""
        return await services.compute.run(answer_genre, body, request, served)

    @router.post(
        "/predict/popularity",
        response_model=PopularityResponse,
        responses=error_responses(400, 413, 422, 503),
        tags=["predictions"],
        summary="Predict the popularity of tracks",
    )
    @_accepts(models.batch)
    async def predict_popularity(
        body: BatchRequest, request: Request, served: ModelDep, services: ServicesDep
    ) -> dict[str, Any]:
        """The predicted Spotify popularity (0 to 100) of each track (catalog ids, then feature rows)."""
        return await services.compute.run(answer_popularity, body, request, served)

    @router.get(
        "/playlists/{playlist_id}/recommendations",
        response_model=PlaylistRecommendations,
        responses=error_responses(404, 422, 503, s404="The playlist is in no batch input."),
        tags=["recommendations"],
        summary="Recommendations for a known playlist, precomputed by songrec batch",
    )
    async def playlist_recommendations(
        playlist_id: Annotated[str, PathParam(min_length=1, max_length=128)],
        request: Request,
        served: ModelDep,
        services: ServicesDep,
        k: Annotated[int, Query(ge=1, le=config.max_k)] = config.default_k,
    ) -> dict[str, Any]:
        """The k best tracks for a playlist of the latest batch input (`songrec batch recommend`,
        or the songrec_batch_scoring DAG), read from the batch output when it was scored by the
        model serving now (`source: batch`), else scored now from the playlist's tracks
        (`source: live`), as after a promotion, before the next batch."""
        return await services.compute.run(answer_playlist, playlist_id, k, request, served, services.batches)

    @router.get(
        "/tracks",
        response_model=SearchResponse,
        responses=error_responses(422, 503),
        tags=["catalog"],
        summary="Search the catalog by track or artist name",
    )
    async def search_tracks(
        served: ModelDep,
        services: ServicesDep,
        q: Annotated[str, Query(min_length=1, max_length=200, description="Part of a track or artist name.")],
        limit: Annotated[int, Query(ge=1, le=config.search_limit)] = config.search_limit,
    ) -> dict[str, Any]:
        """Catalog tracks whose name or artist contains `q` (case-insensitive), most popular first."""
        return await services.compute.run(answer_search, q, limit, served)

    @router.post(
        "/feedback",
        response_model=FeedbackResponse,
        status_code=202,
        responses=error_responses(400, 404, 413, 422),
        tags=["feedback"],
        summary="Record a play, skip, like or dislike of a recommended track",
    )
    @_accepts(models.feedback)
    def feedback(body: FeedbackRequest, services: ServicesDep) -> dict[str, Any]:
        """Stored in the event store with the request id, so it joins the logged request.

        The track must be one the request returned (else 422), and the same event on the same
        track of a request is stored once (`status: duplicate` after). A request id this server
        never answered is a 404 (when the store can tell).
        """
        answered = services.recent.get(body.request_id)
        if answered is None and services.events.has_request(body.request_id) is False:
            raise ApiError(
                404,
                f"no request {body.request_id} was answered here",
                loc=["body", "request_id"],
                type_="unknown_request",
            )
        status = "accepted"
        if answered is not None:  # answered by this process: its tracks are known here
            if body.track_id not in answered.tracks:
                raise ApiError(
                    422,
                    f"track {body.track_id} is not one that request {body.request_id} returned",
                    loc=["body", "track_id"],
                    type_="not_returned",
                )
            if not services.recent.take_feedback(answered, body.track_id, body.event):
                status = "duplicate"
        if status == "accepted":
            services.events.log_feedback(
                FeedbackEvent(request_id=body.request_id, track_id=body.track_id, event=body.event)
            )
        return {
            "status": status,
            "request_id": str(body.request_id),
            "track_id": body.track_id,
            "event": body.event,
        }

    @router.get("/health", response_model=HealthResponse, tags=["operations"], summary="The process is alive")
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    # HEAD too, a route of its own (one operation id each): load balancers often probe with it.
    @router.head(
        "/health", response_model=HealthResponse, tags=["operations"], summary="The process is alive"
    )
    async def health_head() -> dict[str, Any]:
        return {"status": "ok"}

    @router.get(
        "/ready",
        response_model=ReadyResponse,
        responses=error_responses(503),
        tags=["operations"],
        summary="A model is loaded: which one",
    )
    async def ready(served: ModelDep, services: ServicesDep) -> dict[str, Any]:
        store = services.store
        champion = store.wanted if store.registry_problem is None else None
        return {
            "status": "ready",
            "champion_version": None if champion is None else champion.version,
            "stale": store.stale,
            "problem": store.problem(),
            "model_version": served.version,
            "model_source": served.ref.source,
            "model_uri": served.ref.uri,
            "loaded_at": served.loaded_at,
            "catalog_tracks": len(served.bundle),
            "recommender": served.bundle.recommender_name,
            "max_per_artist": served.bundle.max_per_artist,
            "memory_mib": resident_mib(),
        }

    @router.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
        tags=["operations"],
        summary="Prometheus metrics",
    )
    async def metrics(services: ServicesDep) -> Response:
        """Request counts and latencies by route, the model serving, and the event store's counters."""
        return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @router.post(
        "/admin/reload",
        response_model=ReloadResponse,
        responses=error_responses(401, 503),
        dependencies=[Depends(require_admin)],
        tags=["operations"],
        summary="Load the current champion now",
    )
    def reload(
        services: ServicesDep,
        force: Annotated[bool, Query(description="Reload even if the champion has not changed.")] = False,
    ) -> dict[str, Any]:
        """Ask the registry for the champion and swap it in if it changed (or if `force`).

        Requests in flight finish on the model they started with. Needs the bearer token in the
        server's SONGREC_ADMIN_TOKEN.
        """
        try:
            result = services.store.refresh(force=force)
        except ModelUnavailable as exc:
            raise ApiError(503, str(exc), type_="model_unavailable") from exc
        except Exception as exc:  # the details (SQL, paths) are in the server's log, not the answer
            raise ApiError(
                503,
                f"cannot load the model: {services.store.last_error or type(exc).__name__}",
                type_="load_failed",
            ) from exc
        if services.store.registry_problem is not None:
            raise ApiError(
                503,
                f"cannot read the registry, still serving version {result.model.version}: "
                f"{services.store.registry_problem}",
                type_="registry_unavailable",
            )
        return {
            "swapped": result.swapped,
            "model_version": result.model.version,
            "previous_version": result.previous_version,
        }

    return router


def page_router(config: ServeConfig) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    templates = Jinja2Templates(directory=WEB / "templates")

    @router.get("/", response_class=HTMLResponse)
    async def index(request: Request) -> Response:
        current = request.app.state.services.store.current
        return templates.TemplateResponse(
            request,
            "index.html",
            {
                "model_version": None if current is None else current.version,
                "default_k": config.default_k,
                "max_k": config.max_k,
                "search_limit": config.search_limit,
            },
        )

    return router
