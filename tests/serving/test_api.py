"""Every endpoint through FastAPI's TestClient, on the trained sample bundle; every bad input."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from songrec.config.stage_configs import ServeConfig
from songrec.models.bundle import SongrecBundle
from songrec.serving.app import create_app
from songrec.serving.deps import ComputePool
from songrec.store.request_log import EventStore
from songrec.store.schema import feedback_table, recommendations_table, requests_table
from tests.serving.conftest import ADMIN_TOKEN, MemorySource, feature_row, playlist_ids

UNKNOWN = "0000000000000000000000"


def post(client: TestClient, path: str, body: Any) -> Any:
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


# --------------------------------------------------------------------------- answers


def test_recommend_ranks_catalog_tracks_and_reports_unknown_ids(
    client: TestClient, bundle: SongrecBundle
) -> None:
    seeds = playlist_ids(bundle)
    response = post(client, "/recommend", {"track_ids": [*seeds, UNKNOWN], "k": 7})
    assert response.status_code == 200, response.text
    body = response.json()
    assert uuid.UUID(body["request_id"]) and body["request_id"] == response.headers["x-request-id"]
    assert body["model_version"] == "1"
    assert body["unknown_track_ids"] == [UNKNOWN]
    tracks = body["recommendations"]
    assert [t["rank"] for t in tracks] == list(range(1, 8))
    assert not {t["track_id"] for t in tracks} & set(seeds)
    scores = [t["score"] for t in tracks]
    assert scores == sorted(scores, reverse=True)
    assert all(t["spotify_url"] == f"https://open.spotify.com/track/{t['track_id']}" for t in tracks)
    assert {"track_name", "track_artist", "genre"} <= set(tracks[0])


def test_recommend_from_features_of_unknown_songs_and_the_default_k(
    client: TestClient, bundle: SongrecBundle
) -> None:
    rows = [feature_row(bundle, 0), feature_row(bundle, 1, track_artist=None)]
    response = post(client, "/recommend", {"tracks": rows})
    assert response.status_code == 200, response.text
    assert len(response.json()["recommendations"]) == 10  # serve.default_k


def test_a_playlist_of_unknown_ids_only_is_a_422_that_lists_them(client: TestClient) -> None:
    other = "1111111111111111111111"
    response = post(client, "/recommend", {"track_ids": [UNKNOWN, other]})
    assert response.status_code == 422
    body = response.json()
    assert body["unknown_track_ids"] == [UNKNOWN, other]
    assert body["message"].startswith("track_ids: none of the 2 track ids is in the catalog")
    assert UNKNOWN in body["message"]


def test_genre_and_popularity_predictions_for_ids_and_features(
    client: TestClient, bundle: SongrecBundle
) -> None:
    ids = playlist_ids(bundle, size=3)
    body = {"track_ids": [ids[0], UNKNOWN, ids[1], ids[0]], "tracks": [feature_row(bundle, 5)]}
    genre = post(client, "/predict/genre", body)
    assert genre.status_code == 200, genre.text
    answer = genre.json()
    assert answer["unknown_track_ids"] == [UNKNOWN]
    assert answer["genres"] == list(bundle.genres)
    origins = [(p["input"], p["index"], p["track_id"]) for p in answer["predictions"]]
    assert origins == [("track_ids", 0, ids[0]), ("track_ids", 2, ids[1]), ("tracks", 0, None)]
    for prediction in answer["predictions"]:
        assert prediction["genre"] in bundle.genres
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert prediction["genre"] == max(prediction["probabilities"], key=prediction["probabilities"].get)
    popularity = post(client, "/predict/popularity", body)
    assert popularity.status_code == 200, popularity.text
    values = [p["popularity"] for p in popularity.json()["predictions"]]
    assert len(values) == 3 and all(0 <= v <= 100 for v in values)


def test_search_finds_tracks_by_name_or_artist(client: TestClient, bundle: SongrecBundle) -> None:
    artist = bundle.catalog["track_artist"].value_counts().index[0]
    response = client.get("/tracks", params={"q": artist.upper()[:6], "limit": 5})
    assert response.status_code == 200, response.text
    tracks = response.json()["tracks"]
    assert 0 < len(tracks) <= 5
    needle = artist.lower()[:6]
    assert all(
        needle in (t["track_name"] or "").lower() or needle in (t["track_artist"] or "").lower()
        for t in tracks
    )
    popularity = [t["popularity"] for t in tracks]
    assert popularity == sorted(popularity, reverse=True)
    assert client.get("/tracks", params={"q": "zzzzqqqqxxxx"}).json()["tracks"] == []


def test_answers_computed_in_threads_are_the_answers_computed_on_the_event_loop(
    app: FastAPI, serve_config: ServeConfig, bundle: SongrecBundle, events: EventStore
) -> None:
    assert serve_config.compute_threads > 0  # the shipped default: threads when others wait
    # As if other requests were in the server and every answer were long: all go to the threads.
    app.state.services.compute.requests_in_server += 5
    app.state.services.compute.short_seconds = 0.0
    on_the_loop = create_app(
        dataclasses.replace(serve_config, compute_threads=0),
        model_source=MemorySource({"1": bundle}, "1"),
        events=events,
    )
    requests = [
        ("/recommend", {"track_ids": playlist_ids(bundle), "tracks": [feature_row(bundle, 3)], "k": 9}),
        ("/predict/genre", {"track_ids": playlist_ids(bundle, offset=1)}),
        ("/predict/popularity", {"tracks": [feature_row(bundle, 5)]}),
    ]
    with TestClient(app) as threads, TestClient(on_the_loop) as loop:
        for path, body in requests:
            in_threads, on_loop = post(threads, path, body), post(loop, path, body)
            assert in_threads.status_code == on_loop.status_code == 200, path
            assert {k: v for k, v in in_threads.json().items() if k != "request_id"} == {
                k: v for k, v in on_loop.json().items() if k != "request_id"
            }


def _long_answer() -> int:
    """5 ms of CPU, then the thread it ran in."""
    end = time.thread_time() + 0.005
    while time.thread_time() < end:
        pass
    return threading.get_ident()


def test_an_answer_is_computed_in_threads_only_when_it_is_long_and_others_wait() -> None:
    async def threads_used(pool: ComputePool, requests_in_server: int, answer: Callable[[], int]) -> bool:
        pool.requests_in_server = requests_in_server
        await pool.run(answer)  # the first answer tells the pool how long this work takes
        return await pool.run(answer) != threading.get_ident()

    assert not anyio.run(threads_used, ComputePool(2), 1, _long_answer)  # alone
    assert anyio.run(threads_used, ComputePool(2), 3, _long_answer)
    assert not anyio.run(threads_used, ComputePool(2), 3, threading.get_ident)  # short work
    assert not anyio.run(threads_used, ComputePool(0), 3, _long_answer)


def test_health_ready_and_metrics(client: TestClient, bundle: SongrecBundle) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    head = client.head("/health")
    assert head.status_code == 200 and head.content == b""
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["model_version"] == "1"
    assert ready["catalog_tracks"] == len(bundle)
    # The bundle is held in this (test) process: its memory is at least the catalog's arrays.
    assert ready["memory_mib"] * 2**20 > bundle.catalog.memory_usage(deep=False).sum()
    post(client, "/recommend", {"track_ids": playlist_ids(bundle)})
    post(client, "/recommend", {"track_ids": [], "k": 0})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'songrec_requests_total{endpoint="/recommend",method="POST",status="200"} 1.0' in text
    assert 'songrec_requests_total{endpoint="/recommend",method="POST",status="422"} 1.0' in text
    assert 'songrec_request_duration_seconds_bucket{endpoint="/recommend",le="0.1"}' in text
    assert 'songrec_model_info{recommender="hybrid",source="test",version="1"} 1.0' in text
    assert "songrec_events_dropped_total 0.0" in text
    assert "songrec_event_hold " in text  # 0 or 1: two requests may already look like a burst
    resident = re.search(r"^process_resident_memory_bytes (\S+)$", text, re.MULTILINE)
    assert resident is not None and float(resident.group(1)) > 0


def test_the_page_and_its_script_are_served_from_the_package(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="search-input"' in page.text and 'src="/static/app.js"' in page.text
    assert "//cdn" not in page.text and "https://" not in page.text.replace("https://open.spotify.com", "")
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "fetch(" in script.text


def test_the_openapi_page_documents_every_endpoint(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/recommend",
        "/predict/genre",
        "/predict/popularity",
        "/tracks",
        "/feedback",
        "/health",
        "/ready",
        "/metrics",
        "/admin/reload",
    } <= paths
    features = schema["components"]["schemas"]["TrackFeatures"]["properties"]
    assert features["danceability"]["minimum"] == 0 and features["danceability"]["maximum"] == 1
    assert features["tempo"]["exclusiveMinimum"] == 0
    assert features["mode"]["enum"] == [0, 1]
    assert features["year"]["minimum"] == 1900 and features["year"]["maximum"] == 2099
    assert client.get("/docs").status_code == 200


def test_the_docs_page_loads_only_assets_the_app_serves(client: TestClient) -> None:
    """/docs works offline: no CDN, and every file it names is served by the app."""
    page = client.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text and "https://" not in page.text and "//cdn" not in page.text
    assert "url: '/openapi.json'" in page.text
    urls = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert sorted(urls) == [
        "/docs/assets/favicon.png",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
    ]
    kinds = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(kinds[url[url.rindex(".") :]]), url
        assert len(asset.content) > 1000, url
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert client.get("/docs/assets/nothing.js").status_code == 404
    assert client.get("/redoc").status_code == 404  # no ReDoc: it always loads a logo from a CDN


# --------------------------------------------------------------------------- bad input


def _valid(bundle: SongrecBundle) -> dict[str, Any]:
    return {"track_ids": playlist_ids(bundle, size=2), "tracks": [feature_row(bundle)], "k": 5}


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("k zero", {"k": 0}, "k: Input should be greater than or equal to 1"),
    ("k negative", {"k": -3}, "k: Input should be greater than or equal to 1"),
    ("k above max_k", {"k": 101}, "k: Input should be less than or equal to 100"),
    ("k as text", {"k": "ten"}, "k: Input should be a valid integer"),
    ("k as float", {"k": 5.0}, "k: Input should be a valid integer"),
    ("k as bool", {"k": True}, "k: Input should be a valid integer"),
    ("ids not a list", {"track_ids": "abc"}, "track_ids: Input should be a valid list"),
    ("id malformed", {"track_ids": ["not-an-id"]}, "track_ids[0]: String should match pattern"),
    ("id a number", {"track_ids": [12]}, "track_ids[0]: Input should be a valid string"),
    ("unknown field", {"genre": "pop"}, "genre: unknown field"),
    ("tracks not objects", {"tracks": [1]}, "tracks[0]: Input should be a valid dictionary"),
]
BAD_FEATURES: list[tuple[str, dict[str, Any], str]] = [
    ("above range", {"danceability": 1.5}, "tracks[0].danceability: Input should be less than or equal to 1"),
    ("below range", {"loudness": -61.0}, "tracks[0].loudness: Input should be greater than or equal to -60"),
    ("exclusive minimum", {"tempo": 0.0}, "tracks[0].tempo: Input should be greater than 0"),
    ("int above range", {"key": 12}, "tracks[0].key: Input should be less than or equal to 11"),
    ("not an allowed value", {"mode": 2}, "tracks[0].mode: must be one of [0, 1]"),
    (
        "year outside the release-date contract",
        {"year": 1850},
        "tracks[0].year: Input should be greater than or equal to 1900",
    ),
    ("number as text", {"energy": "0.5"}, "tracks[0].energy: Input should be a valid number"),
    ("int as float", {"duration_ms": 200000.5}, "tracks[0].duration_ms: Input should be a valid integer"),
    ("null feature", {"valence": None}, "tracks[0].valence: Input should be a valid number"),
    ("misspelt feature", {"dancability": 0.5}, "tracks[0].dancability: unknown field"),
]


@pytest.mark.parametrize(("case", "change", "expected"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_fields_are_422s_that_name_the_field(
    client: TestClient, bundle: SongrecBundle, case: str, change: dict[str, Any], expected: str
) -> None:
    response = post(client, "/recommend", {**_valid(bundle), **change})
    assert response.status_code == 422, response.text
    assert expected in response.json()["message"]


@pytest.mark.parametrize(("case", "change", "expected"), BAD_FEATURES, ids=[c[0] for c in BAD_FEATURES])
@pytest.mark.parametrize("path", ["/recommend", "/predict/genre", "/predict/popularity"])
def test_features_outside_the_data_contract_are_422s(
    client: TestClient, bundle: SongrecBundle, path: str, case: str, change: dict[str, Any], expected: str
) -> None:
    body = {"tracks": [feature_row(bundle, **change)]}
    response = post(client, path, body)
    assert response.status_code == 422, response.text
    assert expected in response.json()["message"]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinite_features_are_refused(client: TestClient, bundle: SongrecBundle, value: str) -> None:
    row = json.dumps(feature_row(bundle)).replace(
        '"energy": ' + json.dumps(feature_row(bundle)["energy"]), f'"energy": {value}'
    )
    response = client.post(
        "/recommend", content=f'{{"tracks": [{row}]}}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "tracks[0].energy: Input should be a finite number" in response.json()["message"]


def test_a_missing_feature_is_named(client: TestClient, bundle: SongrecBundle) -> None:
    row = feature_row(bundle)
    del row["acousticness"]
    response = post(client, "/recommend", {"tracks": [row]})
    assert response.status_code == 422
    assert response.json()["message"] == "tracks[0].acousticness: missing (this field is required)"


@pytest.mark.parametrize("path", ["/recommend", "/predict/genre", "/predict/popularity"])
def test_empty_and_oversized_playlists(client: TestClient, bundle: SongrecBundle, path: str) -> None:
    empty = post(client, path, {"track_ids": [], "tracks": []})
    assert empty.status_code == 422
    assert "tracks: the " in empty.json()["message"] and "is empty" in empty.json()["message"]
    assert post(client, path, {}).status_code == 422
    limit = 500 if path == "/recommend" else 1000  # serve.max_playlist_tracks, serve.max_batch_tracks
    ids = [f"{i:022d}" for i in range(limit + 1)]
    too_many = post(client, path, {"track_ids": ids})
    assert too_many.status_code == 422
    assert f"track_ids: List should have at most {limit} items" in too_many.json()["message"]
    split = post(client, path, {"track_ids": ids[: limit - 1], "tracks": [feature_row(bundle)] * 2})
    assert split.status_code == 422
    assert f"at most {limit} are allowed" in split.json()["message"]


def test_malformed_json_and_wrong_bodies(client: TestClient) -> None:
    broken = client.post(
        "/recommend", content=b'{"track_ids": [', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert broken.json()["message"].startswith("body: malformed JSON")
    for body in (b"[1, 2]", b'"a string"', b"null"):
        response = client.post("/recommend", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422, body
        assert response.json()["message"].startswith("body:")
    form = client.post("/recommend", content=b"track_ids=x", headers={"content-type": "text/plain"})
    assert form.status_code == 422


def test_oversized_bodies_are_413_before_parsing(client: TestClient) -> None:
    big = b'{"track_ids": [' + b'"0000000000000000000000",' * 60_000 + b'"0000000000000000000000"]}'
    declared = client.post("/recommend", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert declared.json()["message"].startswith("body: the request body has")

    def chunks() -> Any:  # no content-length: the limit is counted as the body streams in
        for _ in range(200):
            yield b" " * 10_000

    streamed = client.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert "larger than 1048576 bytes" in streamed.json()["message"]


def test_search_parameters_are_checked(client: TestClient) -> None:
    assert "q: missing" in client.get("/tracks").json()["message"]
    assert client.get("/tracks", params={"q": ""}).status_code == 422
    too_many = client.get("/tracks", params={"q": "a", "limit": 21})
    assert too_many.status_code == 422 and too_many.json()["message"].startswith("limit: ")
    assert client.get("/tracks", params={"q": "a", "limit": "x"}).status_code == 422
    assert client.get("/tracks", params={"q": "   "}).json()["tracks"] == []


def test_unknown_routes_and_methods_answer_in_the_same_shape(client: TestClient) -> None:
    missing = client.get("/nothing-here")
    assert missing.status_code == 404 and missing.json()["message"] == "Not Found"
    assert client.get("/recommend").status_code == 405


# --------------------------------------------------------------------------- feedback and the log


def test_feedback_is_stored_and_joins_the_logged_request(
    client: TestClient, bundle: SongrecBundle, events: EventStore
) -> None:
    answer = post(client, "/recommend", {"track_ids": playlist_ids(bundle), "k": 3}).json()
    first = answer["recommendations"][0]["track_id"]
    for event in ("play", "like"):
        response = post(
            client, "/feedback", {"request_id": answer["request_id"], "track_id": first, "event": event}
        )
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "accepted"
    assert events.flush()
    from sqlalchemy import select

    request_id = uuid.UUID(answer["request_id"])
    query = (
        select(feedback_table.c.event, requests_table.c.endpoint, recommendations_table.c.rank)
        .join(requests_table, requests_table.c.request_id == feedback_table.c.request_id)
        .join(
            recommendations_table,
            (recommendations_table.c.request_id == feedback_table.c.request_id)
            & (recommendations_table.c.track_id == feedback_table.c.track_id),
        )
        .where(feedback_table.c.request_id == request_id)
        .order_by(feedback_table.c.id)
    )
    with events.engine.connect() as connection:
        rows = connection.execute(query).all()
    assert [tuple(row) for row in rows] == [("play", "/recommend", 1), ("like", "/recommend", 1)]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"event": "love"}, "event: Input should be 'play', 'skip', 'like' or 'dislike'"),
        ({"request_id": "not-a-uuid"}, "request_id: Input should be a valid UUID"),
        ({"track_id": "x"}, "track_id: String should match pattern"),
        ({"request_id": None}, "request_id: "),
    ],
)
def test_bad_feedback_is_a_422_naming_the_field(
    client: TestClient, bundle: SongrecBundle, change: dict[str, Any], expected: str
) -> None:
    answer = post(client, "/recommend", {"track_ids": playlist_ids(bundle), "k": 1}).json()
    body = {
        "request_id": answer["request_id"],
        "track_id": playlist_ids(bundle)[0],
        "event": "play",
        **change,
    }
    response = post(client, "/feedback", body)
    assert response.status_code == 422
    assert expected in response.json()["message"]


def test_feedback_names_a_returned_track_and_is_stored_once(
    client: TestClient, bundle: SongrecBundle, events: EventStore
) -> None:
    answer = post(client, "/recommend", {"track_ids": playlist_ids(bundle), "k": 3}).json()
    returned = [t["track_id"] for t in answer["recommendations"]]
    other = next(t for t in bundle.catalog["track_id"] if t not in returned)
    body = {"request_id": answer["request_id"], "track_id": other, "event": "like"}
    refused = post(client, "/feedback", body)
    assert refused.status_code == 422 and "is not one that request" in refused.json()["message"]
    same = {**body, "track_id": returned[1]}
    statuses = [post(client, "/feedback", same).json()["status"] for _ in range(50)]
    assert statuses == ["accepted"] + ["duplicate"] * 49
    assert events.flush()
    assert events.count(feedback_table, request_id=uuid.UUID(answer["request_id"])) == 1


def test_feedback_on_a_request_never_answered_is_a_404(
    client: TestClient, bundle: SongrecBundle, events: EventStore
) -> None:
    post(client, "/recommend", {"track_ids": playlist_ids(bundle), "k": 1})
    assert events.flush()  # the store exists and can tell
    response = post(
        client, "/feedback", {"request_id": str(uuid.uuid4()), "track_id": UNKNOWN, "event": "skip"}
    )
    assert response.status_code == 404
    assert response.json()["message"].startswith("request_id: no request")


def test_every_api_request_is_logged_with_what_it_returned(
    client: TestClient, bundle: SongrecBundle, events: EventStore
) -> None:
    seeds = playlist_ids(bundle, size=3)
    ok = post(
        client, "/recommend", {"track_ids": [*seeds, UNKNOWN], "tracks": [feature_row(bundle)], "k": 4}
    ).json()
    bad = post(client, "/recommend", {"track_ids": seeds, "k": 0})
    client.get("/tracks", params={"q": "a"})
    client.get("/health")  # not an API request: not logged
    assert events.flush()
    from sqlalchemy import select

    with events.engine.connect() as connection:
        logged = connection.execute(select(requests_table).order_by(requests_table.c.time)).mappings().all()
        recommended = (
            connection.execute(
                select(recommendations_table).where(
                    recommendations_table.c.request_id == uuid.UUID(ok["request_id"])
                )
            )
            .mappings()
            .all()
        )
    assert [(row["endpoint"], row["status"]) for row in logged] == [
        ("/recommend", 200),
        ("/recommend", 422),
        ("/tracks", 200),
    ]
    first = logged[0]
    assert str(first["request_id"]) == ok["request_id"]
    assert first["model_version"] == "1" and first["k"] == 4
    assert first["input_track_ids"] == [*seeds, UNKNOWN]
    assert (
        first["n_feature_tracks"] == 1 and first["input_tracks"][0]["energy"] == feature_row(bundle)["energy"]
    )
    assert first["latency_ms"] > 0
    assert str(logged[1]["request_id"]) == bad.headers["x-request-id"]
    assert sorted((r["rank"], r["track_id"], r["score"]) for r in recommended) == [
        (t["rank"], t["track_id"], t["score"]) for t in ok["recommendations"]
    ]


# --------------------------------------------------------------------------- admin


def test_reload_needs_the_bearer_token(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN_TOKEN}"}):
        response = client.post("/admin/reload", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["message"].startswith("Authorization: ")
    ok = client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert ok.status_code == 200
    assert ok.json() == {"swapped": False, "model_version": "1", "previous_version": "1"}
    forced = client.post(
        "/admin/reload", params={"force": "true"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert forced.json()["swapped"] is True


def test_reload_is_closed_without_a_configured_token(app: Any) -> None:
    import dataclasses

    services = app.state.services
    app.state.services = dataclasses.replace(
        services, config=dataclasses.replace(services.config, admin_token=None)
    )
    with TestClient(app) as client:
        response = client.post("/admin/reload", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 401
    assert "without SONGREC_ADMIN_TOKEN" in response.json()["message"]
