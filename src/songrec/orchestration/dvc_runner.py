"""Running a registry stage through DVC, as the Airflow tasks do (free of Airflow imports).

Each pipeline task runs its stage through DVC (`dvc repro --single-item <stage>`) so that
dvc.lock stays the record of what ran: an Airflow run and a `dvc repro` leave the same state.
DVC refuses a second command on the same repository, so calls are serialized with a file lock
(and, across Celery workers, with the Airflow pool `songrec_dvc` of one slot).
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from songrec.config.environment import Environment
from songrec.config.manager import ConfigurationManager
from songrec.config.rules import find_project_root
from songrec.core.errors import SongrecError
from songrec.orchestration.registry import get_stage

log = logging.getLogger(__name__)

DVC_POOL = "songrec_dvc"
LOCK_FILE = ".dvc/tmp/songrec-dvc.lock"
OUTPUT_TAIL_LINES = 60


class StageFailed(SongrecError):
    """A stage exited non-zero under DVC. `retryable` is False when retrying cannot help."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def project_root() -> Path:
    """The project the tasks work on: SONGREC_ROOT, else the working folder and upwards."""
    return find_project_root(Environment.read().root)


@contextmanager
def dvc_lock(root: Path, timeout: float = 3600.0) -> Iterator[None]:
    """One DVC command at a time on this project (DVC itself fails at once when busy)."""
    path = root / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with path.open("w") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SongrecError(f"waited {timeout:.0f} s for another DVC command on {root}") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_dvc(arguments: list[str], root: Path) -> tuple[int, list[str]]:
    """Run `dvc <arguments>` in `root` (one DVC command at a time there), its output logged line
    by line; return the exit code and the lines."""
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "SONGREC_ROOT": str(root),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [str(Path(bin_dir) / "dvc"), *arguments]
    with dvc_lock(root):
        log.info("running dvc %s in %s", " ".join(arguments), root)
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line.rstrip())
            log.info("%s", line.rstrip())
        return process.wait(), lines


def run_stage(name: str, root: Path | None = None) -> dict[str, Any]:
    """Run one registry stage through DVC; log its output; return a small summary for XCom."""
    root = root or project_root()
    started = time.perf_counter()
    code, lines = run_dvc(["repro", "--single-item", name], root)
    if code != 0:
        tail = "\n".join(lines[-OUTPUT_TAIL_LINES:])
        stage = get_stage(name)
        raise StageFailed(
            f"stage {name} failed (dvc exit code {code}):\n{tail}",
            retryable=not stage.data_error(ConfigurationManager(root)),
        )
    summary: dict[str, Any] = {
        "stage": name,
        "ran": f"Running stage '{name}'" in "\n".join(lines),
        "seconds": round(time.perf_counter() - started, 1),
        **get_stage(name).summary(ConfigurationManager(root)),
    }
    log.info("stage %s: %s", name, summary)
    return summary
