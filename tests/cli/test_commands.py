"""The `songrec` command as a newcomer meets it: every command it prints works as printed in a
fresh shell, its help names the stages, and a failed traffic simulation fails the command."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from songrec.orchestration.registry import STAGE_NAMES
from tests.conftest import BIN, ROOT, edit_yaml, free_port, run_cli
from tests.services import stop_group, wait_http

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evaluated(trained_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project after its first whole run: metrics, plots, version 1 as champion."""
    project = tmp_path_factory.mktemp("evaluated") / "project"
    shutil.copytree(trained_project, project)
    run_cli("songrec", "run", "evaluate", cwd=project)
    return project


def fresh_shell(project: Path) -> dict[str, str]:
    """A new shell's environment: the user's, without the virtualenv on PATH (nothing activated)."""
    venv = str(BIN)
    path = os.pathsep.join(part for part in os.environ.get("PATH", "").split(os.pathsep) if part != venv)
    return {**os.environ, "PATH": path or "/usr/bin:/bin", "SONGREC_ROOT": str(project), "VIRTUAL_ENV": ""}


def next_commands(summary: str) -> list[str]:
    lines = summary.split("Next:", 1)[1].splitlines()
    return [line.split("  ", 2)[1].strip() for line in lines if line.startswith("  make ")]


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        stop_group(process)


def test_every_command_the_summary_prints_works_in_a_fresh_shell(
    evaluated: Path, tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    summary = run_cli("songrec", "summary", cwd=evaluated).stdout
    commands = next_commands(summary)
    assert commands == ["make metrics", "make ui", "make serve"], summary
    assert "source .venv/bin/activate" in summary  # how to call the tools by name
    env = fresh_shell(evaluated)
    assert shutil.which("dvc", path=env["PATH"]) is None  # the tools are not on this PATH

    metrics = subprocess.run(
        ["bash", "-c", "make metrics"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert metrics.returncode == 0, metrics.stdout + metrics.stderr
    assert "macro_f1" in metrics.stdout

    # The servers as printed, on ports of the test's choosing (the targets take them as arguments).
    for command, path, check in (
        ("make ui", "/", lambda answer: "MLflow" in answer.text),
        ("make serve", "/ready", lambda answer: answer.json()["model_version"] == "1"),
    ):
        port = free_port()
        argument = "UI_ARGS" if "ui" in command else "SERVE_ARGS"
        log = tmp_path / f"{command.replace(' ', '-')}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                ["bash", "-c", f'{command} {argument}="--port {port}"'],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(process)
        url = f"http://127.0.0.1:{port}{path}"
        wait_http(url, process, log, timeout=180)
        assert check(requests.get(url, timeout=10)), f"{command}: {url}"
        stop_group(process)


def test_run_help_lists_the_stages() -> None:
    shown = run_cli("songrec", "run", "--help", cwd=ROOT).stdout
    assert all(name in shown for name in STAGE_NAMES)
    wrong = run_cli("songrec", "run", "trian", cwd=ROOT, check=False)
    assert wrong.returncode == 2 and "'trian' is not one of" in wrong.stderr


def test_simulate_fails_when_the_api_cannot_be_reached(project: Path) -> None:
    """Its default API is the serve section's host and port; nothing listens there here."""
    port = free_port()
    edit_yaml(project / "config" / "config.yaml", {"serve.port": port})
    result = run_cli(
        "songrec",
        "simulate",
        "--max-requests",
        "3",
        "--max-seconds",
        "20",
        "--rate",
        "50",
        "--label-delay",
        "0",
        cwd=project,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "SONGREC_ROOT"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"traffic to http://127.0.0.1:{port}" in result.stderr
    assert "none of 3 requests was answered (3 could not reach the API)" in result.stderr


def test_labels_review_accept_and_reject_work_on_the_held_labels(project: Path, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from songrec.store.engine import connect
    from songrec.store.label_review import conflicts, held_labels, store_labels

    url = f"sqlite:///{tmp_path / 'events.db'}"
    engine = connect(url)
    now = datetime.now(UTC)
    records = [
        {"time": now, "track_id": track, "genre": genre, "row": {"track_id": track}}
        for track, genre in (("a" * 22, "pop"), ("a" * 22, "rock"), ("b" * 22, "rap"), ("b" * 22, "edm"))
    ]
    batch = {"batch_id": uuid.uuid4(), "time": now, "source_address": "test", "sender": "labeler", "rows": 4}
    with engine.begin() as connection:
        reasons = conflicts(connection, records, lambda track: None)
        assert store_labels(connection, {**batch, "track_ids": []}, records, reasons) == 2
    env = {"SONGREC_EVENT_STORE_URL": url}
    listed = run_cli("songrec", "labels", "review", cwd=project, env=env).stdout
    assert "row 0 of this batch says 'pop'" in listed and "2 held" in listed
    assert "1 label(s) accepted" in run_cli("songrec", "labels", "accept", "2", cwd=project, env=env).stdout
    again = run_cli("songrec", "labels", "accept", "2", cwd=project, env=env, check=False)
    assert again.returncode != 0 and "not held" in again.stderr
    assert run_cli("songrec", "labels", "reject", cwd=project, env=env, check=False).returncode == 2  # no ids
    assert (
        "1 label(s) rejected" in run_cli("songrec", "labels", "reject", "--all", cwd=project, env=env).stdout
    )
    assert held_labels(engine).empty
    engine.dispose()
