"""Which model serves, the background refresh, and swaps under load that fail no request."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from songrec.config.stage_configs import ServeConfig, TrackingConfig
from songrec.models.bundle import SongrecBundle
from songrec.serving.app import create_app
from songrec.serving.model_store import ModelStore
from songrec.store.request_log import EventStore
from songrec.tracking.model_source import ChampionSource, FileSource, ModelRef, ModelUnavailable
from tests.serving.conftest import (
    ADMIN_TOKEN,
    MemorySource,
    SwitchableSource,
    playlist_ids,
    running_server,
)


def test_the_background_refresh_swaps_in_a_new_champion(two_bundle_files: dict[str, Path]) -> None:
    source = SwitchableSource(two_bundle_files, "1")
    store = ModelStore(source, reload_interval_seconds=0.1)
    store.start()
    try:
        first = store.current
        assert first is not None and first.version == "1"
        time.sleep(0.5)
        assert source.loads == 1  # unchanged champion: checked, not reloaded
        source.champion = "2"
        deadline = time.monotonic() + 30
        while store.current is first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.current is not None and store.current.version == "2"
        assert store.swaps == 1 and source.loads == 2
    finally:
        store.stop()


def test_a_failing_refresh_keeps_the_current_model(bundle: SongrecBundle) -> None:
    source = MemorySource({"1": bundle}, "1")
    store = ModelStore(source, reload_interval_seconds=0.05)
    store.start()
    try:
        source.champion = "missing"  # load() will raise KeyError
        time.sleep(0.4)
        assert store.current is not None and store.current.version == "1"
        assert store.last_error is not None and "KeyError" in store.last_error
    finally:
        store.stop()


def test_a_bundle_the_request_contract_cannot_feed_is_refused(bundle: SongrecBundle) -> None:
    def check(candidate: SongrecBundle) -> None:
        raise ModelUnavailable("reads features the request contract does not have")

    store = ModelStore(MemorySource({"1": bundle}, "1"), 60, check=check)
    with pytest.raises(ModelUnavailable):
        store.refresh()
    assert store.current is None


def _tracking(uri: str, backend: str = "server") -> TrackingConfig:
    return TrackingConfig(
        uri=uri, experiment="e", registered_model="songrec", artifact_location=None, backend=backend
    )


def test_the_champion_source_falls_back_to_the_local_bundle(bundle_file: Path, tmp_path: Path) -> None:
    no_store = ChampionSource(_tracking(f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}", "local"), bundle_file)
    ref = no_store.locate()
    assert ref.source == "file" and ref.uri == str(bundle_file) and ref.version.startswith("file-")
    assert ref == FileSource(bundle_file).locate()  # the same file has the same version
    with pytest.raises(ModelUnavailable, match="nothing to serve"):
        ChampionSource(_tracking(f"sqlite:///{tmp_path / 'none.db'}", "local"), tmp_path / "no.pkl").locate()


def test_an_unreachable_registry_never_replaces_a_serving_champion(
    bundle_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = ChampionSource(_tracking("http://127.0.0.1:9"), bundle_file)

    def unreachable() -> str | None:
        raise ConnectionError("connection refused")

    monkeypatch.setattr(source, "_champion_version", unreachable)
    assert source.locate().source == "file"  # nothing serves yet: the local bundle
    serving = ModelRef(version="7", source="registry", uri="models:/songrec/7")
    assert source.locate(serving) == serving  # a champion serves: keep it
    monkeypatch.setattr(source, "_champion_version", lambda: None)  # the alias was removed
    assert source.locate(serving) == serving
    monkeypatch.setattr(source, "_champion_version", lambda: "8")
    assert source.locate(serving) == ModelRef(version="8", source="registry", uri="models:/songrec/8")


@pytest.mark.slow
def test_swapping_the_champion_under_load_fails_no_request(
    serve_config: ServeConfig, two_bundle_files: dict[str, Path], bundle: SongrecBundle
) -> None:
    """16 clients hammer /recommend while the champion changes 10 times (each swap loads a file)."""
    source = SwitchableSource(two_bundle_files, "1")
    config = dataclasses.replace(serve_config, reload_interval_seconds=3600)
    events = EventStore(config.event_store_url)
    app = create_app(config, model_source=source, events=events)
    statuses: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    seeds = playlist_ids(bundle, size=5)

    with running_server(app) as url:

        def hammer() -> None:
            with requests.Session() as session:
                while not stop.is_set():
                    try:
                        response = session.post(
                            f"{url}/recommend", json={"track_ids": seeds, "k": 10}, timeout=30
                        )
                        outcome = str(response.status_code)
                        version = response.json().get("model_version", "?") if response.ok else "-"
                    except requests.RequestException as exc:
                        outcome, version = type(exc).__name__, "-"
                    with lock:
                        statuses[outcome] += 1
                        versions[version] += 1

        clients = [threading.Thread(target=hammer) for _ in range(16)]
        for thread in clients:
            thread.start()
        try:
            auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            for swap in range(10):
                time.sleep(0.3)
                source.champion = "2" if swap % 2 == 0 else "1"
                reload = requests.post(f"{url}/admin/reload", headers=auth, timeout=120)
                assert reload.status_code == 200, reload.text
                assert reload.json()["swapped"] is True
                assert reload.json()["model_version"] == source.champion
            time.sleep(0.3)
        finally:
            stop.set()
            for thread in clients:
                thread.join(60)
    assert source.loads == 11
    assert set(statuses) == {"200"}, statuses
    assert statuses["200"] > 100
    assert set(versions) == {"1", "2"}, versions  # both models answered while the other loaded


@pytest.mark.parametrize(
    "pickled",
    [
        b"\x80\x04csongrec.models.recommender\nRerankerThatIsGone\n)\x81.",  # a class that moved away
        b"\x80\x04csongrec.models.gone_module\nHybridRecommender\n)\x81.",  # a module that did
    ],
)
def test_a_bundle_saved_by_other_code_is_refused_with_a_clear_message(tmp_path: Path, pickled: bytes) -> None:
    path = tmp_path / "old.pkl"
    path.write_bytes(pickled)
    source = FileSource(path)
    with pytest.raises(
        ModelUnavailable, match="saved by another version of songrec .* register a new version"
    ):
        source.load(source.locate())


def test_a_champion_that_cannot_be_loaded_is_shown_in_ready_and_metrics(
    serve_config: ServeConfig, two_bundle_files: dict[str, Path], tmp_path: Path, events: EventStore
) -> None:
    """The registry names version 2, whose file is gone: version 1 keeps serving, and says so."""
    files = {**two_bundle_files, "2": tmp_path / "gone.pkl"}
    source = SwitchableSource(files, "1")
    app = create_app(serve_config, model_source=source, events=events)
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        assert client.get("/ready").json()["stale"] is False
        source.champion = "2"
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        failed = client.post("/admin/reload", headers=auth)
        assert failed.status_code == 503 and failed.json()["message"] == (
            "cannot load the model: version 2 cannot be loaded (FileNotFoundError)"
        )
        assert str(tmp_path) not in failed.text  # no path (or SQL) in an answer
        ready = client.get("/ready")
        assert ready.status_code == 200  # it still serves
        shown = {key: ready.json()[key] for key in ("model_version", "champion_version", "stale", "problem")}
        assert shown == {
            "model_version": "1",
            "champion_version": "2",
            "stale": True,
            "problem": "version 2 cannot be loaded (FileNotFoundError)",
        }
        metrics = client.get("/metrics").text
        assert "songrec_champion_load_failures_total 1.0" in metrics and "songrec_model_stale 1.0" in metrics


def test_an_unreadable_registry_is_an_error_of_reload_without_its_sql(
    serve_config: ServeConfig, bundle_file: Path, tmp_path: Path, events: EventStore
) -> None:
    broken = tmp_path / "mlflow.db"
    broken.write_bytes(b"this is not a database" * 100)  # a real fault: the store is unreadable
    config = dataclasses.replace(serve_config, tracking=_tracking(f"sqlite:///{broken}", "local"))
    app = create_app(config, model_source=ChampionSource(config.tracking, bundle_file), events=events)
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        ready = client.get("/ready").json()
        assert ready["model_source"] == "file" and ready["champion_version"] is None
        assert ready["problem"].startswith("registry sqlite:///") and "unavailable (" in ready["problem"]
        reload = client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert reload.status_code == 503 and reload.json()["detail"][0]["type"] == "registry_unavailable"
        assert "SELECT" not in reload.text and "file is not a database" not in reload.text
        assert "songrec_registry_up 0.0" in client.get("/metrics").text
