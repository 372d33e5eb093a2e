"""ingest: fetch the configured source and write data/raw/ with an ingestion record.

Reads the source named in config/config.yaml (a local path or file://, http(s)://, or s3://,
holding a .csv, .csv.gz, a .zip with one CSV, or a Parquet file), checks its sha256, appends the rows that
retraining accepted into data/additions/ (one parquet file per logical date), and writes
data/raw/tracks.parquet and data/raw/ingestion.json (source, sha256, additions, rows)
together, atomically: a failed ingestion leaves the previous raw data as it was.

ingestion.json is a DVC output, so it holds only what the inputs determine: a local source is
recorded relative to the project root (URLs as configured) and the time of ingestion goes to
the log, not the file. The same inputs give the same bytes on any machine, and dvc.lock stays.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pandas as pd

from songrec.config.manager import ConfigurationManager
from songrec.config.stage_configs import IngestConfig
from songrec.core.errors import IngestionError
from songrec.core.io import atomic_dir
from songrec.core.sources import fetch_url

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
PARQUET_MAGIC = b"PAR1"  # at both ends of a Parquet file


# --------------------------------------------------------------------------- pure core


def sha256_of(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def check_sha256(payload: bytes, expected: str | None, source: str) -> str:
    """Return the payload's sha256; raise if it differs from the configured one."""
    actual = sha256_of(payload)
    if expected is not None and actual != expected:
        raise IngestionError(
            f"sha256 mismatch for {source}: expected {expected}, got {actual} "
            "(the source changed; update ingest.sha256 in config/config.yaml if that is intended)"
        )
    return actual


def decode_csv_bytes(payload: bytes, source: str) -> bytes:
    """The CSV inside a payload that is plain CSV, gzip-compressed CSV, or a zip with one CSV."""
    if not payload:
        raise IngestionError(f"{source} is empty (0 bytes)")
    if payload.startswith(GZIP_MAGIC):
        try:
            return gzip.decompress(payload)
        except (EOFError, OSError, zlib.error) as exc:
            raise IngestionError(f"{source} is not a readable gzip file (truncated?): {exc}") from exc
    if payload.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                csvs = [
                    name
                    for name in archive.namelist()
                    if name.lower().endswith((".csv", ".csv.gz")) and not name.startswith("__MACOSX/")
                ]
                if len(csvs) != 1:
                    found = ", ".join(archive.namelist()) or "nothing"
                    raise IngestionError(
                        f"{source} must hold exactly one .csv file, found {len(csvs)} (contents: {found})"
                    )
                inner = archive.read(csvs[0])
        except zipfile.BadZipFile as exc:
            raise IngestionError(f"{source} is not a readable zip file: {exc}") from exc
        return decode_csv_bytes(inner, f"{source}!{csvs[0]}")
    return payload


def parse_tracks(payload: bytes, source: str) -> pd.DataFrame:
    """Parse the source's bytes into a DataFrame, keeping the types pandas infers.

    Nothing is coerced here: a stray text value in a numeric column stays visible as a text
    column, so validation can name it. A Parquet file keeps the types it was written with.
    """
    if payload.startswith(PARQUET_MAGIC):
        return parse_parquet(payload, source)
    text = decode_csv_bytes(payload, source)
    if not text.strip():
        raise IngestionError(f"{source} holds no CSV content")
    check_last_row(text, source)
    try:
        frame = pd.read_csv(io.BytesIO(text), low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise IngestionError(f"{source} is not a readable CSV: {exc}") from exc
    if frame.empty:
        raise IngestionError(f"{source} has a header but no rows")
    return frame


def parse_parquet(payload: bytes, source: str) -> pd.DataFrame:
    if not payload.endswith(PARQUET_MAGIC):
        raise IngestionError(f"{source} is not a whole Parquet file (its footer is missing: cut short?)")
    try:
        frame = pd.read_parquet(io.BytesIO(payload))
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise IngestionError(f"{source} is not a readable Parquet file: {exc}") from exc
    if frame.empty:
        raise IngestionError(f"{source} has columns but no rows")
    return frame


def check_last_row(text: bytes, source: str) -> None:
    """A file cut short ends in the middle of a row, with no line break and fewer fields than
    the header: say so, instead of letting the row's missing fields look like empty values."""
    if text.endswith((b"\n", b"\r")):
        return
    header, _, _ = text.partition(b"\n")
    last = text.rsplit(b"\n", 1)[-1]

    def fields(line: bytes) -> int:
        return len(next(csv.reader([line.decode("utf-8", errors="replace")]), []))

    if fields(last) < fields(header):
        line = text.count(b"\n") + 1
        raise IngestionError(
            f"{source} ends in the middle of a row: line {line} has {fields(last)} of the header's "
            f"{fields(header)} fields and no line break (the file was cut short; fetch it again)"
        )


def ingestion_record(source: str, sha256: str, frame: pd.DataFrame, size: int) -> dict[str, Any]:
    """What was ingested: a function of the inputs only (no time, no machine-specific path)."""
    return {
        "source": source,
        "sha256": sha256,
        "bytes": size,
        "rows": len(frame),
        "columns": list(frame.columns),
    }


# --------------------------------------------------------------------------- runner


def fetch(config: IngestConfig) -> bytes:
    """Read the whole configured source, with a progress bar; any failure names the source."""
    return fetch_url(config.source, config.s3_endpoint_url, config.timeout_seconds)


def run(manager: ConfigurationManager) -> dict[str, Any]:
    config = manager.ingest()
    log.info("ingesting %s", config.source)
    payload = fetch(config)
    sha256 = check_sha256(payload, config.sha256, config.source)
    frame = parse_tracks(payload, config.source)
    source_rows = len(frame)
    additions = read_additions(config.additions_dir)
    if additions:
        frame = pd.concat([frame, *additions.values()], ignore_index=True)
    # A local source relative to the project root when inside it (the same in every clone); a
    # URL, or a path outside the project, as configured.
    source = config.source if "://" in config.source else manager.relative(Path(config.source))
    record = ingestion_record(source, sha256, frame, len(payload))
    record["source_rows"] = source_rows
    record["additions"] = {name: len(rows) for name, rows in additions.items()}
    with atomic_dir(config.raw_dir) as staging:
        frame.to_parquet(staging / config.raw_tracks.name, index=False)
        (staging / config.record.name).write_text(_dump(record))
    # The time of ingestion is logged (the log lines carry it), not recorded in the DVC output.
    log.info("ingested %d rows (sha256 %s) into %s", len(frame), sha256[:12], config.raw_dir)
    return {"rows": len(frame), "sha256": sha256}


def read_additions(folder: Path) -> dict[str, pd.DataFrame]:
    """The accepted additions, by file name, in name (logical date) order."""
    if not folder.is_dir():
        return {}
    return {path.name: pd.read_parquet(path) for path in sorted(folder.glob("*.parquet"))}


def _dump(record: dict[str, Any]) -> str:
    import json

    return json.dumps(record, indent=2) + "\n"
