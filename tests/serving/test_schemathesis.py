"""Property-based tests of the whole API from its own OpenAPI document (schemathesis).

For every operation in /openapi.json, schemathesis generates requests that fit the document
(positive) and requests that break it (negative), sends them to the app, and runs its checks
on every answer: never a server error, a status the document lists, a body that matches the
documented schema, the documented content type, invalid data refused.

One check is left out: positive_data_acceptance (a request that fits the document must get a
2xx). A request can fit the document and still be refused on purpose, with the 422 the issue
asks for: a playlist of random ids the catalog does not know, or track_ids and tracks that
together exceed serve.max_playlist_tracks.

(schemathesis.pytest.from_fixture, its lazy pytest integration, fails on pytest 9 in
schemathesis 4.32: it reads `request.node._nodeid`; its Hypothesis strategies are used here
instead, with the same checks.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from songrec.config.stage_configs import ServeConfig
from songrec.models.bundle import SongrecBundle
from songrec.serving.app import create_app
from songrec.store.request_log import EventStore
from tests.serving.conftest import LABELER, MemorySource

pytestmark = pytest.mark.slow

OPERATIONS = [
    ("POST", "/recommend"),
    ("POST", "/predict/genre"),
    ("POST", "/predict/popularity"),
    ("GET", "/tracks"),
    ("POST", "/feedback"),
    ("GET", "/health"),
    ("HEAD", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("POST", "/admin/reload"),
    ("POST", "/labels"),
    ("GET", "/playlists/{playlist_id}/recommendations"),
]
WITHOUT_INPUT = {
    ("GET", "/health"),
    ("HEAD", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
}  # nothing to break
CASES = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode}")
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or (method, path) not in WITHOUT_INPUT
]
# Per operation and mode: a bounded run; SONGREC_SCHEMATHESIS_EXAMPLES=500 for a deeper one.
EXAMPLES = int(os.environ.get("SONGREC_SCHEMATHESIS_EXAMPLES", "30"))


@pytest.fixture
def api_schema(serve_config: ServeConfig, bundle: SongrecBundle, events: EventStore) -> Iterator[Any]:
    app: FastAPI = create_app(serve_config, model_source=MemorySource({"1": bundle}, "1"), events=events)
    with TestClient(app):  # runs the lifespan: the model is loaded, the event writer runs
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_is_tested(api_schema: Any) -> None:
    documented = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_the_api_keeps_its_documented_contract(
    api_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        # /labels with its token, so that the body is what gets tested, not the 401.
        headers = LABELER if path == "/labels" else None
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    check()
