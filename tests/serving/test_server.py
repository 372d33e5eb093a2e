"""`songrec serve` as a real process: time to ready, the local bundle, the registry's champion."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.conftest import BIN, edit_yaml, free_port, run_cli
from tests.services import process_group, wait_http

pytestmark = pytest.mark.slow

ADMIN = "server-test-token"


@pytest.fixture
def project(trained_project: Path, tmp_path: Path) -> Path:
    """The trained sample project, copied (without any MLflow store), with a 1 s champion check."""
    copy = tmp_path / "project"
    shutil.copytree(trained_project, copy, ignore=shutil.ignore_patterns("mlruns", "var"))
    edit_yaml(copy / "config" / "config.yaml", {"serve.reload_interval_seconds": 1})
    return copy


def _serve(project: Path, log: Path, port: int, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    command = [str(BIN / "songrec"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return process_group(command, log, env={"SONGREC_ADMIN_TOKEN": ADMIN, **(env or {})}, cwd=project)


def _ready(url: str) -> dict[str, object]:
    answer: dict[str, object] = requests.get(f"{url}/ready", timeout=5).json()
    return answer


def test_serve_starts_ready_fast_on_the_local_bundle_and_logs_its_requests(
    project: Path, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    started = time.monotonic()
    with _serve(project, log, port) as process:
        wait_http(f"{url}/ready", process, log, timeout=60)
        seconds = time.monotonic() - started
        print(f"songrec serve ready after {seconds:.2f} s (no registry: the local bundle)")
        ready = _ready(url)
        assert ready["model_source"] == "file" and str(ready["model_version"]).startswith("file-")
        ids = [
            t["track_id"]
            for t in requests.get(f"{url}/tracks", params={"q": "a"}, timeout=5).json()["tracks"]
        ]
        answer = requests.post(f"{url}/recommend", json={"track_ids": ids[:3], "k": 4}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert "http://127.0.0.1" in log.read_text()  # the URL is printed
    # A stopped server has written what it logged (the writer drains its queue on shutdown).
    engine = create_engine(f"sqlite:///{project / 'var' / 'events.db'}")
    with engine.connect() as connection:
        endpoints = [
            row[0] for row in connection.execute(text("SELECT endpoint FROM requests ORDER BY time"))
        ]
        recommended = connection.execute(text("SELECT count(*) FROM recommendations")).scalar_one()
    engine.dispose()
    assert endpoints == ["/tracks", "/recommend"] and recommended == 4


def test_serve_follows_the_registry_champion(project: Path, tmp_path: Path) -> None:
    run_cli("songrec", "run", "evaluate", cwd=project)  # registers version 1 as champion
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with _serve(project, log, port) as process:
        wait_http(f"{url}/ready", process, log, timeout=60)
        assert (_ready(url)["model_source"], _ready(url)["model_version"]) == ("registry", "1")
        run_cli("songrec", "run", "evaluate", cwd=project)  # version 2: a candidate only
        promotion = json.loads((project / "reports" / "promotion.json").read_text())
        assert not promotion["promoted"] and promotion["champion_version_after"] == "1"
        assert "the gate would promote it" in promotion["reason"]
        run_cli("songrec", "promote", "--version", "2", cwd=project)  # the release, through the gate
        deadline = time.monotonic() + 60
        while _ready(url)["model_version"] != "2" and time.monotonic() < deadline:
            time.sleep(0.5)  # the background check (every 1 s here) swaps it in
        assert _ready(url)["model_version"] == "2"
        closed = requests.post(f"{url}/admin/reload", timeout=60)
        assert closed.status_code == 401
        reload = requests.post(
            f"{url}/admin/reload", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60
        )
        assert reload.json() == {"swapped": False, "model_version": "2", "previous_version": "2"}

        # `songrec rollback` moves champion back to v1; the API follows within its interval.
        rolled = json.loads(run_cli("songrec", "rollback", cwd=project).stdout)
        assert (rolled["from_version"], rolled["to_version"], rolled["recorded"]) == ("2", "1", True)
        deadline = time.monotonic() + 60
        while _ready(url)["model_version"] != "1" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _ready(url)["model_version"] == "1"
        # The summary tells the last run's decision (v2 promoted) from what serves now (v1).
        summary = run_cli("songrec", "summary", cwd=project).stdout
        assert "last run: songrec v2 kept as challenger" in summary
        assert "serving now: songrec v1 (the registry's champion)" in summary
        again = run_cli("songrec", "rollback", cwd=project, check=False)
        assert again.returncode != 0 and "replaced no earlier champion" in again.stderr

    engine = create_engine(f"sqlite:///{project / 'var' / 'events.db'}")
    with engine.connect() as connection:
        moves = connection.execute(
            text("SELECT action, from_version, to_version FROM promotions ORDER BY id")
        ).fetchall()
        promoted_metrics = connection.execute(
            text("SELECT metrics_to FROM promotions WHERE to_version = '2'")
        ).scalar_one()
    engine.dispose()
    assert [tuple(move) for move in moves] == [
        ("promote", None, "1"),
        ("promote", "1", "2"),
        ("rollback", "2", "1"),
    ]
    assert "recall_at_100" in json.loads(promoted_metrics)
