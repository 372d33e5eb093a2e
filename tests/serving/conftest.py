"""Fixtures of the serving tests: the trained sample project served from memory or from files."""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from songrec.config.manager import ConfigurationManager
from songrec.config.stage_configs import ServeConfig
from songrec.core.io import load_model
from songrec.models.bundle import SongrecBundle
from songrec.serving.app import create_app
from songrec.store.request_log import EventStore
from songrec.tracking.model_source import ModelRef
from tests.conftest import free_port

CHROMEDRIVER = Path("/usr/bin/chromedriver")

ADMIN_TOKEN = "test-admin-token"
LABELER_TOKEN = "test-labeler-token"
LABELER = {"Authorization": f"Bearer {LABELER_TOKEN}"}


class SwitchableSource:
    """A model source whose champion a test names: `champion` is a key of `files` (bundle files).

    Each load reads the file again, as a real swap does, so loading costs what it costs.
    """

    def __init__(self, files: dict[str, Path], champion: str) -> None:
        self.files = files
        self.champion = champion
        self.loads = 0

    def locate(self, serving: ModelRef | None = None) -> ModelRef:
        return ModelRef(version=self.champion, source="test", uri=str(self.files[self.champion]))

    def load(self, ref: ModelRef) -> SongrecBundle:
        self.loads += 1
        bundle: SongrecBundle = load_model(ref.uri)
        return bundle


class MemorySource:
    """A model source over bundles already in memory (fast: for tests that do not swap)."""

    def __init__(self, bundles: dict[str, SongrecBundle], champion: str) -> None:
        self.bundles = bundles
        self.champion = champion

    def locate(self, serving: ModelRef | None = None) -> ModelRef:
        return ModelRef(version=self.champion, source="test", uri=f"memory:{self.champion}")

    def load(self, ref: ModelRef) -> SongrecBundle:
        return self.bundles[ref.version]


@pytest.fixture(scope="session")
def base_config(trained_project: Path) -> ServeConfig:
    return ConfigurationManager(trained_project).serve()


@pytest.fixture
def serve_config(base_config: ServeConfig, tmp_path: Path) -> ServeConfig:
    """The sample project's serve config, with its own SQLite event store and an admin token;
    no rate limits (tests load routes harder than one client may; test_limits sets its own)."""
    return dataclasses.replace(
        base_config,
        event_store_url=f"sqlite:///{tmp_path / 'events.db'}",
        event_spool_dir=tmp_path / "event-spool",
        admin_token=ADMIN_TOKEN,
        labeler_token=LABELER_TOKEN,
        rate_limits={},
    )


@pytest.fixture
def events(serve_config: ServeConfig) -> Iterator[EventStore]:
    store = EventStore(serve_config.event_store_url, flush_interval=0.05)
    yield store
    store.stop()


@pytest.fixture
def app(serve_config: ServeConfig, bundle: SongrecBundle, events: EventStore) -> FastAPI:
    return create_app(serve_config, model_source=MemorySource({"1": bundle}, "1"), events=events)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def two_bundle_files(bundle_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The trained bundle under two versions (two files), for swaps."""
    folder = tmp_path_factory.mktemp("bundles")
    files = {"1": folder / "v1.pkl", "2": folder / "v2.pkl"}
    for path in files.values():
        shutil.copy(bundle_file, path)
    return files


def playlist_ids(bundle: SongrecBundle, size: int = 5, offset: int = 0) -> list[str]:
    """Track ids of one artist's tracks when possible (a playlist with a clear taste)."""
    catalog = bundle.catalog
    artist = catalog["track_artist"].value_counts().index[offset]
    ids = catalog.loc[catalog["track_artist"] == artist, "track_id"].head(size).tolist()
    return [str(i) for i in ids]


def feature_row(bundle: SongrecBundle, position: int = 0, **changes: object) -> dict[str, object]:
    """A catalog track as a feature row (JSON-ready numbers), with `changes` applied."""
    row = bundle.catalog.iloc[position]
    values: dict[str, object] = {}
    for name in bundle.numeric_features:
        value = row[name]
        values[name] = int(value) if name in ("key", "mode", "duration_ms", "year") else float(value)
    values["track_artist"] = row["track_artist"] if isinstance(row["track_artist"], str) else None
    values.update(changes)
    return values


@contextmanager
def chromium(*arguments: str, log_requests: bool = False) -> Iterator[object]:
    """Debian's headless Chromium through its ChromeDriver, with `arguments` beside the usual ones."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not CHROMEDRIVER.exists() or not (shutil.which("chromium") or Path("/usr/bin/chromium").exists()):
        pytest.fail(
            "Debian's chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        *arguments,
    ):
        options.add_argument(argument)
    if log_requests:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as driver:
        yield driver


@contextmanager
def running_server(app: FastAPI, **options: Any) -> Iterator[str]:
    """The app on a real uvicorn server in a thread (`options`: uvicorn's); yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
