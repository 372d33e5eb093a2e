"""What the Airflow tasks do, kept out of the DAG files and free of Airflow imports.

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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from songrec.config import PARAMS_FILE, ConfigurationManager, find_project_root
from songrec.errors import ConfigError, SongrecError
from songrec.io import atomic_path, read_json

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
    """The project the tasks work on: SONGREC_ROOT, else the folder above the DAGs."""
    return find_project_root(Path(os.environ["SONGREC_ROOT"]) if os.environ.get("SONGREC_ROOT") else None)


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


def run_stage(name: str, root: Path | None = None) -> dict[str, Any]:
    """Run one registry stage through DVC; log its output; return a small summary for XCom."""
    root = root or project_root()
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "SONGREC_ROOT": str(root),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [str(Path(bin_dir) / "dvc"), "repro", "--single-item", name]
    started = time.perf_counter()
    with dvc_lock(root):
        log.info("running %s in %s", " ".join(command[1:]), root)
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line.rstrip())
            log.info("%s", line.rstrip())
        code = process.wait()
    output = "\n".join(lines)
    if code != 0:
        tail = "\n".join(lines[-OUTPUT_TAIL_LINES:])
        raise StageFailed(
            f"stage {name} failed (dvc exit code {code}):\n{tail}", retryable=not _is_data_error(name, root)
        )
    ran = f"Running stage '{name}'" in output
    summary: dict[str, Any] = {
        "stage": name,
        "ran": ran,
        "seconds": round(time.perf_counter() - started, 1),
        **stage_summary(name, ConfigurationManager(root)),
    }
    log.info("stage %s: %s", name, summary)
    return summary


def _is_data_error(name: str, root: Path) -> bool:
    """A validation failure is the data's fault: retrying the task cannot fix it."""
    if name != "validate":
        return False
    try:
        report = read_json(ConfigurationManager(root).validate().report)
    except (SongrecError, ValueError):
        return False
    return report.get("passed") is False


def stage_summary(name: str, manager: ConfigurationManager) -> dict[str, Any]:
    """What is worth knowing after a stage, read from its outputs."""
    if name == "validate":
        report = read_json(manager.validate().report)
        return {k: report[k] for k in ("passed", "rows", "quarantined_rows")}
    if name == "evaluate":
        promotion = read_json(manager.evaluate().promotion_report)
        keys = (
            "run_id",
            "challenger_version",
            "champion_version_before",
            "champion_version_after",
            "promoted",
            "reason",
        )
        return {k: promotion.get(k) for k in keys}
    return {}


# --------------------------------------------------------------------------- params overrides


def apply_params_overrides(overrides: Mapping[str, Any], root: Path | None = None) -> dict[str, Any]:
    """Set dotted params.yaml keys for an experiment run, as `dvc exp run --set-param` does.

    The new file is checked by the ConfigurationManager before it replaces params.yaml, so a
    bad value fails here, naming the key, and params.yaml stays as it was. Comments are kept.
    Returns {key: [old, new]} for the keys that changed.
    """
    root = root or project_root()
    if not overrides:
        return {}
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    path = root / PARAMS_FILE
    document = yaml.load(path.read_text())
    changes: dict[str, Any] = {}
    for dotted, value in overrides.items():
        node = document
        *parents, last = str(dotted).split(".")
        for key in parents:
            if not isinstance(node, dict) or key not in node:
                raise ConfigError(f"{PARAMS_FILE}: no key {dotted} to override")
            node = node[key]
        if not isinstance(node, dict) or last not in node:
            raise ConfigError(f"{PARAMS_FILE}: no key {dotted} to override")
        if node[last] != value:
            changes[str(dotted)] = [_plain(node[last]), value]
            node[last] = value
    if not changes:
        return {}
    with atomic_path(path, suffix=".yaml") as tmp:
        with tmp.open("w") as handle:
            yaml.dump(document, handle)
        ConfigurationManager(root, params_file=tmp)  # raises ConfigError naming the bad key
    log.info("params.yaml overrides for this run: %s", changes)
    return changes


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- serving


def request_reload(api_url: str | None, token: str | None, timeout: float = 30.0) -> dict[str, Any]:
    """Ask the serving API to load the current champion; never raises (the API may be down)."""
    if not api_url:
        return {"requested": False, "reason": "no serving API configured (SONGREC_API_URL)"}
    import requests

    url = f"{api_url.rstrip('/')}/admin/reload"
    try:
        response = requests.post(url, headers={"Authorization": f"Bearer {token or ''}"}, timeout=timeout)
    except requests.RequestException as exc:
        log.warning("could not ask %s to reload: %s", url, exc)
        return {"requested": True, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    ok = response.status_code < 400
    (log.info if ok else log.warning)(
        "reload %s -> HTTP %d %s", url, response.status_code, response.text[:200]
    )
    return {"requested": True, "ok": ok, "status": response.status_code, "body": response.text[:500]}
