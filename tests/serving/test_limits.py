"""Slow and greedy clients: header and body deadlines, the connection cap and per-client rate
limits, on a real uvicorn server with songrec serve's own options (serving.server.uvicorn_options)."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
import requests
from fastapi.testclient import TestClient

from songrec.config.stage_configs import ServeConfig
from songrec.core.errors import ConfigError
from songrec.models.bundle import SongrecBundle
from songrec.serving.app import create_app
from songrec.serving.server import uvicorn_options
from songrec.store.events import CLIENT_TIMEOUT
from songrec.store.request_log import EventStore
from songrec.store.schema import requests_table
from tests.serving.conftest import MemorySource, playlist_ids, running_server


def metric(text: str, name: str) -> float:
    line = next((line for line in text.splitlines() if line.startswith(name + " ")), None)
    return float(line.split()[-1]) if line else 0.0


@contextmanager
def served(config: ServeConfig, bundle: SongrecBundle, events: EventStore) -> Iterator[str]:
    app = create_app(config, model_source=MemorySource({"1": bundle}, "1"), events=events)
    with running_server(app, **uvicorn_options(config)) as url:
        yield url


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def seconds_until_closed(sock: socket.socket) -> tuple[float, bytes]:
    """How long until the server closes the connection, and what it sent before."""
    started = time.monotonic()
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return time.monotonic() - started, received


def test_a_client_over_its_rate_gets_429_with_retry_after(
    serve_config: ServeConfig, bundle: SongrecBundle, events: EventStore
) -> None:
    limited = dataclasses.replace(
        serve_config,
        rate_limits={"/recommend": 2.0, "/playlists/{playlist_id}/recommendations": 1.0},
        rate_limit_burst_seconds=1.5,  # three requests at once, then two a second
    )
    app = create_app(limited, model_source=MemorySource({"1": bundle}, "1"), events=events)
    body = {"track_ids": playlist_ids(bundle), "k": 3}
    with TestClient(app) as client:
        statuses = [client.post("/recommend", json=body).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        refused = client.post("/recommend", json=body)
        assert int(refused.headers["retry-after"]) >= 1
        assert (
            "/recommend" in refused.json()["message"]
            and refused.json()["detail"][0]["type"] == "rate_limited"
        )
        assert client.post("/predict/genre", json={"track_ids": playlist_ids(bundle)}).status_code == 200
        assert client.get("/playlists/a/recommendations").status_code != 429
        assert client.get("/playlists/b/recommendations").status_code == 429  # one route, any id
        metrics = client.get("/metrics").text
        assert 'songrec_rate_limited_total{endpoint="/recommend"} 3.0' in metrics
        assert 'songrec_requests_total{endpoint="/recommend",method="POST",status="429"} 3.0' in metrics
        assert events.flush()
    assert events.count(requests_table, endpoint="/recommend", status=429) == 0  # counted, not logged
    assert events.count(requests_table, endpoint="/recommend", status=200) == 3


def test_a_rate_limit_on_no_route_is_a_config_error(serve_config: ServeConfig, bundle: SongrecBundle) -> None:
    typo = dataclasses.replace(serve_config, rate_limits={"/recomend": 5.0})
    with pytest.raises(
        ConfigError, match=r"serve.rate_limits./recomend: no such route; did you mean /recommend\?"
    ):
        create_app(typo, model_source=MemorySource({"1": bundle}, "1"))


def test_slow_headers_are_cut_off_and_a_slow_body_gets_408(
    serve_config: ServeConfig, bundle: SongrecBundle, events: EventStore
) -> None:
    quick = dataclasses.replace(serve_config, header_timeout_seconds=1.0, body_timeout_seconds=1.5)
    with served(quick, bundle, events) as url, ExitStack() as stack:
        slow_headers = stack.enter_context(connect(url))
        slow_headers.sendall(b"POST /recommend HTTP/1.1\r\nHost: songrec\r\n")  # and never the rest
        slow_body = stack.enter_context(connect(url))
        slow_body.sendall(
            b"POST /recommend HTTP/1.1\r\nHost: songrec\r\nContent-Type: application/json\r\n"
            b'Content-Length: 200\r\n\r\n{"track_ids": ['
        )
        # Meanwhile everyone else is answered.
        assert requests.get(f"{url}/health", timeout=5).status_code == 200
        ok = requests.post(f"{url}/recommend", json={"track_ids": playlist_ids(bundle), "k": 3}, timeout=5)
        assert ok.status_code == 200

        waited, sent = seconds_until_closed(slow_headers)
        assert sent == b"" and waited < 3
        waited, sent = seconds_until_closed(slow_body)
        assert sent.startswith(b"HTTP/1.1 408 ") and b"did not arrive within 1.5 s" in sent and waited < 3
        assert b"connection: close" in sent.lower()
        assert events.flush()
        assert events.count(requests_table, endpoint="/recommend", status=CLIENT_TIMEOUT) == 1
        assert not events.holding  # the wait was the client's, not busy time


def test_beyond_max_connections_new_requests_get_503(
    serve_config: ServeConfig, bundle: SongrecBundle, events: EventStore
) -> None:
    capped = dataclasses.replace(serve_config, max_connections=3, header_timeout_seconds=30.0)
    with served(capped, bundle, events) as url, ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(connect(url)).sendall(b"GET /health HTTP/1.1\r\n")  # held open
        time.sleep(0.2)
        assert requests.get(f"{url}/health", timeout=5).status_code == 503
        stack.close()  # the held connections go
        deadline = time.monotonic() + 5
        while requests.get(f"{url}/health", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the server did not take connections again"
            time.sleep(0.05)
