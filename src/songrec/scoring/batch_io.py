"""Reading batch inputs in chunks and writing batch outputs atomically, local or on S3.

Inputs are Parquet or CSV (optionally gzipped), read as a stream of record batches, so memory
is bounded by the chunk size and not by the file. An output is written to a temporary file
beside the target and renamed (local), or uploaded as one object (S3, where an object appears
only once its upload completes): a reader never sees half a file.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from songrec.core.errors import SongrecError
from songrec.core.io import atomic_path
from songrec.core.sources import filesystem


class BatchInputError(SongrecError):
    """A batch input that cannot be scored at all: missing, empty, or without the columns."""


def is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def input_chunks(source: str, rows: int, s3_endpoint_url: str | None) -> Iterator[pd.DataFrame]:
    """The rows of a Parquet or CSV file (`.csv.gz` too), `rows` at a time, as DataFrames of text
    and numbers (ids stay text)."""
    with _open(source, s3_endpoint_url) as handle:
        if source.endswith(".parquet"):
            batches: Iterator[pa.RecordBatch] = pq.ParquetFile(handle).iter_batches(batch_size=rows)
        elif source.endswith((".csv", ".csv.gz")):
            stream = gzip.GzipFile(fileobj=handle) if source.endswith(".gz") else handle
            options = pa_csv.ReadOptions(block_size=1 << 22)
            convert = pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in ("playlist_id", "track_id", "track_artist")}
            )
            batches = _rebatch(pa_csv.open_csv(stream, read_options=options, convert_options=convert), rows)
        else:
            raise BatchInputError(f"{source}: a batch input is a .parquet, .csv or .csv.gz file")
        yield from (batch.to_pandas() for batch in batches)


def _rebatch(reader: Any, rows: int) -> Iterator[pa.RecordBatch]:
    """CSV blocks are sized in bytes: cut them into at most `rows` rows."""
    for block in reader:
        for start in range(0, block.num_rows, rows):
            yield block.slice(start, rows)


@contextmanager
def _open(source: str, s3_endpoint_url: str | None) -> Iterator[Any]:
    if not is_remote(source):
        local = Path(source.removeprefix("file://"))
        if not local.is_file():
            raise BatchInputError(f"{source}: no such file")
        with local.open("rb") as handle:
            yield handle
        return
    fs, path = filesystem(source, s3_endpoint_url)
    if not fs.exists(path):
        raise BatchInputError(f"{source}: no such object")
    with fs.open(path, "rb") as handle:
        yield handle


class ParquetSink:
    """Parquet written chunk by chunk; visible at `target` only when `commit` has run."""

    def __init__(self, target: str, s3_endpoint_url: str | None) -> None:
        self.target = target
        self.s3_endpoint_url = s3_endpoint_url
        self.rows = 0

    @contextmanager
    def open(self) -> Iterator[ParquetSink]:
        if is_remote(self.target):
            fs, path = filesystem(self.target, self.s3_endpoint_url)
            with fs.open(path, "wb") as handle:  # the object appears when the upload completes
                self._handle = handle
                yield self
                self._close()
            return
        with atomic_path(Path(self.target.removeprefix("file://")), suffix=".parquet") as tmp:
            self._handle = tmp
            yield self
            self._close()

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if not hasattr(self, "_writer"):
            self._writer = pq.ParquetWriter(self._handle, table.schema)
        self._writer.write_table(table)
        self.rows += len(frame)

    def _close(self) -> None:
        if hasattr(self, "_writer"):
            self._writer.close()
