"""File I/O for stage runners: atomic writes, so a stage that dies leaves the last good output.

Every writer goes to a temporary sibling first and renames it into place; a rename within one
file system is atomic, so a reader sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from songrec.core.errors import StageInputMissing

if TYPE_CHECKING:  # pandas loads lazily: DAG files import this module at parse time
    import pandas as pd


@contextmanager
def atomic_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `target`; move it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(_default_mode(0o666))  # mkstemp makes 0600; give the file its usual mode
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `target`; swap it in for `target` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = target.with_name(f".{target.name}.old")
    try:
        yield tmp
        tmp.chmod(_default_mode(0o777))
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(data: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(require(path).read_text())


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def read_parquet(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(require(path), columns=columns)


def write_with(path: Path, writer: Callable[[Path], None], suffix: str = "") -> None:
    """Atomically write `path` with a function that writes to the path it is given."""
    with atomic_path(path, suffix=suffix) as tmp:
        writer(tmp)


def save_model(model: object, path: Path) -> None:
    """Atomically pickle a fitted model (protocol 5: numpy arrays as raw buffers).

    Python's C pickler, not joblib's: joblib reads through a pure-Python unpickler, many times
    slower for a bundle of many small arrays and strings, and the pipeline, the gate and every
    API start load bundles.
    """

    def write(tmp: Path) -> None:
        tmp.write_bytes(pickle.dumps(model, protocol=5))

    write_with(path, write)


def load_model(path: Path) -> Any:
    """A model saved by save_model, or by joblib (`.joblib`, what older versions registered)."""
    if Path(path).suffix == ".joblib":
        import joblib

        return joblib.load(path)
    with open(path, "rb") as file:
        return pickle.load(file)


def require(path: Path) -> Path:
    """Return `path`, or raise StageInputMissing naming it when it is not there."""
    if not Path(path).exists():
        raise StageInputMissing(f"{path} does not exist: run the stage that writes it first")
    return Path(path)


def _default_mode(base: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
