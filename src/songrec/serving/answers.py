"""The answers of the routes that compute: plain functions of a request body and the serving
model, run in the compute pool (deps.ComputePool). routes.py wires them to the HTTP routes, and
the stream scorer (stream_scoring.py) checks its entries with the same helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request

from songrec.models.catalog_view import FeatureRow, Resolved
from songrec.scoring.latest import LatestBatch
from songrec.serving.deps import note, request_id
from songrec.serving.errors import ApiError
from songrec.serving.model_store import ServedModel
from songrec.serving.schemas import BatchRequest, PlaylistRequest, RecommendRequest


def request_rows(body: PlaylistRequest, served: ServedModel) -> list[FeatureRow]:
    names = served.bundle.numeric_features
    return [FeatureRow(values=track.values(names), artist=track.track_artist) for track in body.tracks]


def require_known(resolved: Resolved, rows: Sequence[FeatureRow]) -> None:
    if len(resolved.positions) or rows:
        return
    raise ApiError(
        422,
        f"none of the {len(resolved.unknown)} track ids is in the catalog: {', '.join(resolved.unknown[:20])}"
        + (" ..." if len(resolved.unknown) > 20 else ""),
        loc=["body", "track_ids"],
        type_="unknown_track_ids",
        unknown_track_ids=resolved.unknown,
    )


def answer_recommend(body: RecommendRequest, request: Request, served: ServedModel) -> dict[str, Any]:
    view = served.view
    resolved = view.resolve(body.track_ids)
    rows = request_rows(body, served)
    note(
        request,
        model_version=served.version,
        track_ids=body.track_ids,
        tracks=[track.model_dump(exclude_none=True) for track in body.tracks],
        k=body.k,
    )
    require_known(resolved, rows)
    answer = view.recommend(resolved, rows, body.k, body.max_per_artist)
    note(request, recommendations=[(t["rank"], t["track_id"], t["score"]) for t in answer.tracks])
    request.app.state.services.recent.add(request_id(request), (t["track_id"] for t in answer.tracks))
    return {
        "request_id": str(request_id(request)),
        "model_version": served.version,
        "k": body.k,
        "recommendations": answer.tracks,
        "unknown_track_ids": answer.unknown_track_ids,
    }


def answer_playlist(
    playlist_id: str, k: int, request: Request, served: ServedModel, batches: LatestBatch | None
) -> dict[str, Any]:
    loaded = batches.current() if batches is not None else None
    if loaded is None:
        raise ApiError(404, "no batch of playlist recommendations yet: run `songrec batch recommend`")
    view = served.view
    note(request, model_version=served.version, k=k)
    found = loaded.recommendations(playlist_id, k) if loaded.model_version == served.version else None
    if found is not None:
        positions = [view.position(track_id) for track_id in found[0]]
        kept = [(p, s) for p, s in zip(positions, found[1], strict=True) if p is not None]
        tracks = view.ranked([p for p, _ in kept], [s for _, s in kept])
        source, run_id = "batch", loaded.batch_run_id
    else:
        members = loaded.playlists.get(playlist_id)
        if members is None:
            raise ApiError(
                404, f"playlist {playlist_id!r} is not in the latest batch input", ["path", "playlist_id"]
            )
        resolved = view.resolve(members)
        if len(resolved.positions) == 0:
            raise ApiError(
                404, f"playlist {playlist_id!r} has no track the serving model knows", ["path", "playlist_id"]
            )
        tracks = view.recommend(resolved, [], k).tracks
        source, run_id = "live", None
    note(request, recommendations=[(t["rank"], t["track_id"], t["score"]) for t in tracks])
    request.app.state.services.recent.add(request_id(request), (t["track_id"] for t in tracks))
    return {
        "request_id": str(request_id(request)),
        "playlist_id": playlist_id,
        "model_version": served.version,
        "k": k,
        "source": source,
        "batch_run_id": run_id,
        "recommendations": tracks,
    }


def answer_genre(body: BatchRequest, request: Request, served: ServedModel) -> dict[str, Any]:
    resolved, rows = _batch(body, request, served)
    predictions = served.view.predict_genre(resolved, rows)
    request.app.state.services.recent.add(request_id(request), body.track_ids)
    return {
        "request_id": str(request_id(request)),
        "model_version": served.version,
        "genres": list(served.bundle.genres),
        "predictions": predictions,
        "unknown_track_ids": resolved.unknown,
    }


def answer_popularity(body: BatchRequest, request: Request, served: ServedModel) -> dict[str, Any]:
    resolved, rows = _batch(body, request, served)
    predictions = served.view.predict_popularity(resolved, rows)
    request.app.state.services.recent.add(request_id(request), body.track_ids)
    return {
        "request_id": str(request_id(request)),
        "model_version": served.version,
        "predictions": predictions,
        "unknown_track_ids": resolved.unknown,
    }


def answer_search(query: str, limit: int, served: ServedModel) -> dict[str, Any]:
    view = served.view
    return {
        "query": query,
        "model_version": served.version,
        "tracks": [view.summary(position) for position in view.search(query, limit)],
    }


def _batch(body: PlaylistRequest, request: Request, served: ServedModel) -> tuple[Resolved, list[FeatureRow]]:
    resolved = served.view.resolve(body.track_ids)
    rows = request_rows(body, served)
    note(
        request,
        model_version=served.version,
        track_ids=body.track_ids,
        tracks=[track.model_dump(exclude_none=True) for track in body.tracks],
    )
    require_known(resolved, rows)
    return resolved, rows
