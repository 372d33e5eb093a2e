"""songrec batch: a file of playlists or tracks scored with a registered model, in chunks.

- `recommend`: rows of (playlist_id, track_id), the rows of one playlist together (as
  songrec's memberships are); by default the catalog's own playlists. Out: the k best tracks
  of each playlist (playlist_id, rank, track_id, score).
- `genre`, `popularity`: rows naming a catalog track by `track_id`, or giving its features
  (every numeric feature; `track_artist`, `track_album_id` if known). Out: one prediction per
  row (row, track_id, genre and its probability, or popularity).

Every output row carries the model version and the batch run id. The run id is derived from
what was scored (task, input, model version, k) unless given, so a rerun writes the same rows
again, and in PostgreSQL it replaces its own rows in one transaction. Invalid rows are skipped
and counted by reason; a file without the needed columns, or without rows, is an error.
A manifest (`<output_dir>/<task>-latest.json`) says where the latest output went and for
which model version: the API answers GET /playlists/{id}/recommendations from it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from songrec.config.stage_configs import BatchConfig
from songrec.core.io import write_json
from songrec.core.progress import Progress
from songrec.models.bundle import SongrecBundle
from songrec.models.catalog_view import CatalogView
from songrec.scoring.batch_io import BatchInputError, ParquetSink, input_chunks
from songrec.tracking.model_source import ChampionSource, FileSource, ModelRef

log = logging.getLogger(__name__)

TASKS = ("recommend", "genre", "popularity")


@dataclass(frozen=True)
class BatchReport:
    task: str
    input: str
    output: str
    model_version: str
    batch_run_id: str
    k: int | None  # recommendations per playlist (recommend)
    rows_read: int
    items: int  # playlists (recommend) or tracks scored
    output_rows: int
    skipped: dict[str, int] = field(default_factory=dict)  # rows (or playlists) per reason
    table: str | None = None  # the PostgreSQL table also written
    seconds: float = 0.0
    finished_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_model(
    config: BatchConfig, version: str | None, bundle_file: Path | None
) -> tuple[ModelRef, SongrecBundle]:
    """The champion (or version N of the registered model, or a bundle file) and its bundle."""
    if bundle_file is not None:
        file_source = FileSource(bundle_file)
        ref = file_source.locate()
        return ref, file_source.load(ref)
    source = ChampionSource(config.serve.tracking, config.serve.bundle)
    if version is None:
        ref = source.locate()
    else:
        name = config.serve.tracking.registered_model
        ref = ModelRef(version=str(version), source="registry", uri=f"models:/{name}/{version}")
    return ref, source.load(ref)


def default_run_id(task: str, source: str, model_version: str, k: int) -> str:
    return hashlib.sha256(f"{task}|{source}|{model_version}|{k}".encode()).hexdigest()[:16]


def default_output(config: BatchConfig, task: str, model_version: str) -> str:
    return str(config.output_dir / task / f"v{model_version}.parquet")


def run_batch(
    config: BatchConfig,
    task: str,
    source: str | None = None,
    output: str | None = None,
    *,
    version: str | None = None,
    bundle_file: Path | None = None,
    run_id: str | None = None,
    k: int | None = None,
    chunk_rows: int | None = None,
    workers: int | None = None,
) -> BatchReport:
    """Score `source` (default: the catalog's playlists) and write `output`; the report."""
    if task not in TASKS:
        raise BatchInputError(f"task {task!r}: choose one of {', '.join(TASKS)}")
    if source is None:
        if task != "recommend":
            raise BatchInputError(f"batch {task} needs --input: a file of track ids or feature rows")
        source = str(config.memberships)
    started = time.perf_counter()
    ref, bundle = resolve_model(config, version, bundle_file)
    k = k or config.k
    run_id = run_id or default_run_id(task, source, ref.version, k)
    target = output or default_output(config, task, ref.version)
    chunks = input_chunks(source, chunk_rows or config.chunk_rows, config.s3_endpoint_url)
    workers = workers or config.workers
    scorer = (
        PlaylistScorer(CatalogView(bundle), k, workers) if task == "recommend" else TrackScorer(bundle, task)
    )
    sink = ParquetSink(target, config.s3_endpoint_url)
    skipped: Counter[str] = Counter()
    rows_read = 0
    log.info("batch %s: %s -> %s with model version %s (run %s)", task, source, target, ref.version, run_id)
    with sink.open(), Progress(None, f"batch {task}", log, unit="rows") as progress:
        for frame in scorer.score(_counted(chunks, progress), skipped):
            frame["model_version"] = ref.version
            frame["batch_run_id"] = run_id
            sink.write(frame)
        rows_read = progress.done
        if rows_read == 0:
            raise BatchInputError(f"{source}: the file has no rows")
        if sink.rows == 0:
            raise BatchInputError(f"{source}: no row could be scored ({_reasons(skipped)})")
    table = _write_table(config, task, target, run_id) if _is_postgres(config.event_store_url) else None
    report = BatchReport(
        task=task,
        input=source,
        output=target,
        model_version=ref.version,
        batch_run_id=run_id,
        k=k if task == "recommend" else None,
        rows_read=rows_read,
        items=scorer.items,
        output_rows=sink.rows,
        skipped=dict(sorted(skipped.items())),
        table=table,
        seconds=round(time.perf_counter() - started, 2),
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    write_json(report.as_dict(), manifest_path(config, task))
    if skipped:
        log.warning("batch %s: skipped %s", task, _reasons(skipped))
    log.info(
        "batch %s: %d scored, %d output rows in %.1f s",
        task,
        report.items,
        report.output_rows,
        report.seconds,
    )
    return report


def manifest_path(config: BatchConfig, task: str) -> Path:
    return config.output_dir / f"{task}-latest.json"


def _counted(chunks: Iterator[pd.DataFrame], progress: Progress) -> Iterator[pd.DataFrame]:
    for frame in chunks:
        progress.update(len(frame))
        yield frame


def _reasons(skipped: Counter[str]) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items())) or "none"


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        present = ", ".join(map(str, frame.columns))
        raise BatchInputError(f"{what} needs the column(s) {', '.join(missing)}; the file has {present}")


# --------------------------------------------------------------------------- scorers


class PlaylistScorer:
    """Each playlist's k best tracks through the API's own recommend, chunks spread over
    `workers` processes (forked after the model is loaded, so they share it), in input order."""

    def __init__(self, view: CatalogView, k: int, workers: int = 1) -> None:
        self.view = view
        self.k = k
        self.workers = workers
        self.items = 0
        self._seen: set[str] = set()

    def score(self, chunks: Iterator[pd.DataFrame], skipped: Counter[str]) -> Iterator[pd.DataFrame]:
        playlists = self._playlists(chunks, skipped)
        if self.workers <= 1:
            results: Iterator[tuple[pd.DataFrame, int]] = (
                _recommend(self.view, self.k, p) for p in playlists
            )
        else:
            results = self._in_workers(playlists)
        for frame, unknown in results:
            if unknown:
                skipped["playlists with no track the model knows"] += unknown
            self.items += frame["playlist_id"].nunique()
            yield frame

    def _in_workers(
        self, playlists: Iterator[list[tuple[str, list[str]]]]
    ) -> Iterator[tuple[pd.DataFrame, int]]:
        import multiprocessing
        from concurrent.futures import Future, ProcessPoolExecutor

        global _WORKER_VIEW
        _WORKER_VIEW = (self.view, self.k)  # inherited by the forked workers
        context = multiprocessing.get_context("fork")
        pending: list[Future[tuple[pd.DataFrame, int]]] = []
        with ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            for group in playlists:
                pending.append(pool.submit(_recommend_in_worker, group))
                if len(pending) >= 2 * self.workers:  # bounded: memory follows the chunk size
                    yield pending.pop(0).result()
            for future in pending:
                yield future.result()

    def _playlists(
        self, chunks: Iterator[pd.DataFrame], skipped: Counter[str]
    ) -> Iterator[list[tuple[str, list[str]]]]:
        """Per chunk, its whole playlists as (id, track ids); a playlist cut by the chunk's end
        is carried into the next chunk."""
        carry: pd.DataFrame | None = None
        for chunk in chunks:
            _require(chunk, ("playlist_id", "track_id"), "batch recommend")
            chunk = chunk[["playlist_id", "track_id"]]
            bad = chunk["playlist_id"].isna() | chunk["track_id"].isna()
            if bad.any():
                skipped["rows without playlist_id or track_id"] += int(bad.sum())
                chunk = chunk[~bad]
            if carry is not None:
                chunk = pd.concat([carry, chunk], ignore_index=True)
            if chunk.empty:
                continue
            tail = (chunk["playlist_id"] == chunk["playlist_id"].iloc[-1]).to_numpy()
            carry, ready = chunk[tail], chunk[~tail]
            if len(ready):
                yield self._split(ready, skipped)
        if carry is not None and len(carry):
            yield self._split(carry, skipped)

    def _split(self, rows: pd.DataFrame, skipped: Counter[str]) -> list[tuple[str, list[str]]]:
        ids = rows["playlist_id"].astype(str).to_numpy()
        tracks = rows["track_id"].astype(str).to_numpy()
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        playlists = []
        for start, end in zip(starts, np.r_[starts[1:], len(ids)], strict=True):
            if ids[start] in self._seen:  # its rows are split: the first part was scored alone
                skipped["rows of a playlist already scored (keep a playlist's rows together)"] += end - start
                continue
            self._seen.add(ids[start])
            playlists.append((str(ids[start]), tracks[start:end].tolist()))
        return playlists


_WORKER_VIEW: tuple[CatalogView, int] | None = None


def _recommend_in_worker(playlists: list[tuple[str, list[str]]]) -> tuple[pd.DataFrame, int]:
    assert _WORKER_VIEW is not None
    return _recommend(*_WORKER_VIEW, playlists)


def _recommend(view: CatalogView, k: int, playlists: list[tuple[str, list[str]]]) -> tuple[pd.DataFrame, int]:
    """The k best tracks of each playlist as rows, and how many playlists had no known track."""
    out: dict[str, list[Any]] = {"playlist_id": [], "rank": [], "track_id": [], "score": []}
    unknown = 0
    for playlist, tracks in playlists:
        resolved = view.resolve(tracks)
        if len(resolved.positions) == 0:
            unknown += 1
            continue
        for track in view.recommend(resolved, [], k).tracks:
            out["playlist_id"].append(playlist)
            out["rank"].append(track["rank"])
            out["track_id"].append(track["track_id"])
            out["score"].append(track["score"])
    return pd.DataFrame(out).astype({"rank": "int32", "score": "float64"}), unknown


class TrackScorer:
    """Genre or popularity of tracks given by id or by features, a chunk per predict call."""

    def __init__(self, bundle: SongrecBundle, task: str) -> None:
        self.bundle = bundle
        self.task = task
        self.items = 0
        self._row = 0

    def score(self, chunks: Iterator[pd.DataFrame], skipped: Counter[str]) -> Iterator[pd.DataFrame]:
        features = list(self.bundle.numeric_features)
        for chunk in chunks:
            rows = np.arange(self._row, self._row + len(chunk))
            self._row += len(chunk)
            if set(features) <= set(chunk.columns):
                inputs, keep = self._from_features(chunk, features, skipped)
            elif "track_id" in chunk.columns:
                inputs, keep = self._from_ids(chunk, skipped)
            else:
                missing = [name for name in features if name not in chunk.columns]
                raise BatchInputError(
                    f"batch {self.task} needs a track_id column or every feature column "
                    f"(missing: {', '.join(missing)}); the file has {', '.join(map(str, chunk.columns))}"
                )
            if not keep.any():
                continue
            out = pd.DataFrame({"row": rows[keep].astype("int64")})
            out["track_id"] = chunk["track_id"].to_numpy()[keep].astype(str) if "track_id" in chunk else None
            if self.task == "genre":
                predicted = self.bundle.predict_genre(inputs)
                out["genre"] = predicted["genre"].to_numpy()
                out["probability"] = predicted.drop(columns="genre").max(axis=1).to_numpy()
            else:
                out["popularity"] = self.bundle.predict_popularity(inputs)
            self.items += len(out)
            yield out

    def _from_ids(self, chunk: pd.DataFrame, skipped: Counter[str]) -> tuple[pd.DataFrame, np.ndarray]:
        positions = self.bundle.track_index.get_indexer(chunk["track_id"].astype(str))
        keep = positions >= 0
        if (~keep).any():
            skipped["rows with a track_id the catalog does not know"] += int((~keep).sum())
        return self.bundle.catalog.iloc[positions[keep]], keep

    def _from_features(
        self, chunk: pd.DataFrame, features: list[str], skipped: Counter[str]
    ) -> tuple[pd.DataFrame, np.ndarray]:
        numbers = chunk[features].apply(pd.to_numeric, errors="coerce")
        finite = np.isfinite(numbers.to_numpy(dtype=np.float64))
        keep = finite.all(axis=1)
        for name, ok in zip(features, finite.all(axis=0), strict=True):
            if not ok:
                skipped[f"rows with {name} missing or not a number"] += int(
                    (~finite[:, features.index(name)]).sum()
                )
        inputs = numbers[keep].copy()
        for column in ("track_artist", "track_album_id"):
            if column in chunk:
                inputs[column] = chunk.loc[keep, column].to_numpy()
        return inputs, keep


# --------------------------------------------------------------------------- the table


def _is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def _write_table(config: BatchConfig, task: str, output: str, run_id: str) -> str:
    """The output's rows in the event store, replacing this run's earlier rows atomically."""
    from sqlalchemy import delete, insert

    from songrec.scoring.batch_io import input_chunks as read_back
    from songrec.store.engine import connect
    from songrec.store.schema import batch_predictions_table, batch_recommendations_table

    table = batch_recommendations_table if task == "recommend" else batch_predictions_table
    engine = connect(config.event_store_url)
    with engine.begin() as connection:
        connection.execute(delete(table).where(table.c.batch_run_id == run_id))
        for frame in read_back(output, 50_000, config.s3_endpoint_url):
            if task != "recommend":
                frame = frame.assign(task=task)
            columns = [c.name for c in table.columns if c.name in frame.columns]
            records = frame[columns].astype(object).where(frame[columns].notna(), None).to_dict("records")
            connection.execute(insert(table), records)
    engine.dispose()
    return table.name
