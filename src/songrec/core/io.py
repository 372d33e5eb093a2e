"""File I/O for stage runners: atomic writes, so a stage that dies leaves the last good output.

Every writer goes to a temporary sibling first and renames it into place; a rename within one
file system is atomic, so a reader sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from songrec.core.errors import StageInputMissing

if TYPE_CHECKING:  # pandas loads lazily: DAG files import this module at parse time
    import pandas as pd
    import pyarrow as pa

# Level 1 of 9: compression is most of the time of writing millions of rows, and on synthetic
# playlist data (random ids and decimals) level 6 takes twice as long for a file a few percent smaller.
CSV_GZIP_LEVEL = 1


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


def write_csv_gz(tables: Iterable[pa.Table], path: Path, level: int = CSV_GZIP_LEVEL) -> str:
    """Atomically write a stream of tables (one schema) as one gzip-compressed CSV with a header;
    return the file's sha256. Memory holds one table at a time; the same tables give the same
    bytes (the gzip header carries no time or name)."""
    import gzip

    from pyarrow import csv

    with (
        _hashed_file(path, ".csv.gz") as (hashed, digest),
        gzip.GzipFile(filename="", mode="wb", fileobj=hashed, compresslevel=level, mtime=0) as packed,
    ):
        _write_tables(tables, lambda schema: csv.CSVWriter(packed, schema))
    return digest.hexdigest()


def write_parquet_stream(tables: Iterable[pa.Table], path: Path) -> str:
    """Atomically write a stream of tables (one schema) as one Parquet file; return its sha256.
    Memory holds one table at a time (each becomes a row group)."""
    from pyarrow import parquet

    with _hashed_file(path, ".parquet") as (hashed, digest):
        _write_tables(tables, lambda schema: parquet.ParquetWriter(hashed, schema))
    return digest.hexdigest()


@contextmanager
def _hashed_file(path: Path, suffix: str) -> Iterator[tuple[_HashingWriter, Any]]:
    """A binary file written atomically to `path`, and the sha256 of what is written to it."""
    digest = hashlib.sha256()
    with atomic_path(path, suffix=suffix) as tmp, open(tmp, "wb") as raw:
        yield _HashingWriter(raw, digest), digest


def _write_tables(tables: Iterable[pa.Table], make_writer: Callable[[pa.Schema], Any]) -> None:
    """Each table through one writer, made for the first table's schema (none for no tables)."""
    writer = None
    for table in tables:
        if writer is None:
            writer = make_writer(table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()


class _HashingWriter(io.RawIOBase):
    """A binary file that also feeds what is written to a hash."""

    def __init__(self, target: BinaryIO, digest: Any) -> None:
        self.target, self.digest = target, digest

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return self.target.write(data)


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
