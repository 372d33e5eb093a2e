"""Retraining: notice new data, decide whether it is enough, and take it into the pipeline's input.

New data lands as files (.csv, .csv.gz, .zip or .parquet, in the source's format) in the incoming folder
or S3 prefix (config.yaml `retrain.incoming`, or SONGREC_INCOMING_URL). A plan compares them
with what the pipeline already reads (the source plus earlier additions):

- rows whose key (config/schema.yaml `unique`) is already known are dropped;
- the plan trains when the source's sha256 changed since the last ingestion, when the new
  rows grow the data by more than `min_growth_share` (the reference system's rule was 1 %),
  or when forced; otherwise it explains why not, and the files wait for the next check.

Accepting a plan writes data/additions/<logical date>.parquet and a manifest beside it. The
source file itself is never changed, earlier additions are kept, and a rerun for the same
logical date rebuilds the same addition (idempotent), so removing an addition file is all it
takes to go back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from songrec.config.stage_configs import RetrainConfig
from songrec.core.io import atomic_path, read_json, write_json
from songrec.core.sources import fetch_url, filesystem
from songrec.stages.ingest import parse_tracks, read_additions

log = logging.getLogger(__name__)

DATA_SUFFIXES = (".csv", ".csv.gz", ".zip", ".parquet")


@dataclass(frozen=True)
class IncomingFile:
    name: str
    url: str
    sha256: str
    payload: bytes = field(repr=False)


@dataclass(frozen=True)
class RetrainingPlan:
    logical_date: str
    train: bool
    reason: str
    files: tuple[IncomingFile, ...]
    new_rows: pd.DataFrame = field(repr=False)
    known_rows: int
    source_changed: bool

    @property
    def growth_share(self) -> float:
        return len(self.new_rows) / self.known_rows if self.known_rows else float(len(self.new_rows) > 0)

    def summary(self) -> dict[str, Any]:
        """A small, JSON-able account of the decision (for logs and XCom)."""
        return {
            "logical_date": self.logical_date,
            "train": self.train,
            "reason": self.reason,
            "new_files": [f.name for f in self.files],
            "new_rows": len(self.new_rows),
            "known_rows": self.known_rows,
            "growth_share": round(self.growth_share, 6),
            "source_changed": self.source_changed,
        }


# --------------------------------------------------------------------------- pure core


def unseen_rows(known: pd.DataFrame, incoming: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame:
    """Incoming rows whose key is in neither `known` nor earlier incoming rows."""
    fresh = incoming.drop_duplicates(list(key))
    known_keys = pd.MultiIndex.from_frame(known[list(key)].astype(str))
    fresh_keys = pd.MultiIndex.from_frame(fresh[list(key)].astype(str))
    return fresh[~fresh_keys.isin(known_keys)].reset_index(drop=True)


def decide(
    new_rows: int, known_rows: int, source_changed: bool, min_growth_share: float, force: bool, n_files: int
) -> tuple[bool, str]:
    """Whether to train, and why (or why not)."""
    share = new_rows / known_rows if known_rows else 1.0
    if source_changed:
        return True, "the source's sha256 changed since the last ingestion"
    if new_rows and share > min_growth_share:
        return True, f"{new_rows} new rows grow the data by {share:.2%} (> {min_growth_share:.2%})"
    if force:
        return True, f"forced ({new_rows} new rows)"
    if not n_files:
        return False, "no new files"
    return False, f"{new_rows} new rows grow the data by {share:.2%}, not above {min_growth_share:.2%}"


# --------------------------------------------------------------------------- the edge


def plan_retraining(
    config: RetrainConfig,
    logical_date: str,
    min_growth_share: float,
    force: bool = False,
) -> RetrainingPlan:
    """Look at the incoming files and decide. Reads only; writes nothing."""
    date = _safe_date(logical_date)
    additions = read_additions(config.additions_dir)
    own = f"{date}.parquet"
    # A rerun of the same logical date sees the data as it was before its own addition.
    earlier = [rows for name, rows in additions.items() if name != own]
    claimed = _claimed_files(config.additions_dir, exclude=date)
    files = tuple(f for f in list_incoming(config) if f.sha256 not in claimed)
    payload = fetch_url(config.source, config.s3_endpoint_url, timeout=60.0)
    source = parse_tracks(payload, config.source)
    known = pd.concat([source, *earlier], ignore_index=True) if earlier else source
    if files:
        incoming = pd.concat([parse_tracks(f.payload, f.url) for f in files], ignore_index=True)
        new_rows = unseen_rows(known, incoming, config.schema.unique)
    else:
        new_rows = source.iloc[:0]
    last = read_json(config.ingestion_record).get("sha256") if config.ingestion_record.exists() else None
    changed = last is not None and hashlib.sha256(payload).hexdigest() != last
    train, reason = decide(len(new_rows), len(known), changed, min_growth_share, force, len(files))
    return RetrainingPlan(date, train, reason, files, new_rows, len(known), changed)


def accept(plan: RetrainingPlan, config: RetrainConfig) -> dict[str, Any]:
    """Write the plan's new rows as the addition of its logical date (replacing a rerun's)."""
    target = config.additions_dir / f"{plan.logical_date}.parquet"
    manifest = config.additions_dir / f"{plan.logical_date}.json"
    if plan.new_rows.empty:
        target.unlink(missing_ok=True)
    else:
        with atomic_path(target, suffix=".parquet") as tmp:
            plan.new_rows.to_parquet(tmp, index=False)
    write_json(
        {
            **plan.summary(),
            # No wall-clock time: a rerun of the same logical date must write the same bytes.
            "files": [{"name": f.name, "url": f.url, "sha256": f.sha256} for f in plan.files],
        },
        manifest,
    )
    log.info("accepted %d new rows from %d files into %s", len(plan.new_rows), len(plan.files), target)
    return plan.summary()


def list_incoming(config: RetrainConfig) -> list[IncomingFile]:
    """The data files in the incoming folder or S3 prefix, with their content."""
    url = config.incoming
    store, root = filesystem(url, config.s3_endpoint_url)
    if not store.exists(root):
        return []
    files = []
    for path in sorted(store.find(root)):
        name = path.rsplit("/", 1)[-1]
        if not name.lower().endswith(DATA_SUFFIXES):
            continue
        payload = store.cat_file(path)
        location = f"s3://{path}" if url.startswith("s3://") else path
        files.append(IncomingFile(name, location, hashlib.sha256(payload).hexdigest(), payload))
    return files


def _claimed_files(additions_dir: Path, exclude: str) -> set[str]:
    """sha256 of every incoming file an earlier logical date already took in."""
    claimed: set[str] = set()
    if not additions_dir.is_dir():
        return claimed
    for manifest in additions_dir.glob("*.json"):
        if manifest.stem == exclude:
            continue
        claimed |= {f["sha256"] for f in json.loads(manifest.read_text()).get("files", [])}
    return claimed


def _safe_date(logical_date: str) -> str:
    """A logical date as a file-name-safe stamp: 2026-11-29T00:00:00+00:00 -> 2026-11-29T000000."""
    stamp = logical_date.replace(":", "").replace("+0000", "").replace("+00:00", "")
    if not stamp or any(c in stamp for c in "/\\ "):
        raise ValueError(f"not a logical date: {logical_date!r}")
    return stamp
