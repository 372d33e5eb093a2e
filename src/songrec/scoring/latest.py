"""The latest batch of recommendations, loaded for look-ups by playlist id.

`songrec batch recommend` writes a manifest beside its outputs (`recommend-latest.json`: the
output, the input, the model version, the run). `LatestBatch` rereads it when it changes (one
stat per look-up) and holds the output as arrays with one slice per playlist, so answering a
known playlist is a dict look-up and a slice. The input's playlists are loaded too: when the
batch is for another model version than the one serving, the caller scores them live.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from songrec.scoring.batch_io import input_chunks

MANIFEST = "recommend-latest.json"


@dataclass(frozen=True)
class LoadedBatch:
    model_version: str
    batch_run_id: str
    output: str
    k: int  # recommendations per playlist in the output
    slices: dict[str, tuple[int, int]]  # playlist id -> rows of track_ids/scores, by rank
    track_ids: np.ndarray
    scores: np.ndarray
    playlists: dict[str, list[str]]  # the input: each playlist's tracks, for live answers

    def recommendations(self, playlist_id: str, k: int) -> tuple[list[str], list[float]] | None:
        found = self.slices.get(playlist_id)
        if found is None or k > self.k:
            return None
        start, end = found
        end = min(end, start + k)
        return self.track_ids[start:end].tolist(), self.scores[start:end].tolist()


class LatestBatch:
    """The batch named by the manifest in `folder`, reloaded when the manifest changes."""

    def __init__(self, folder: Path, s3_endpoint_url: str | None = None) -> None:
        self.manifest = Path(folder) / MANIFEST
        self.s3_endpoint_url = s3_endpoint_url
        self._stamp: tuple[int, int] | None = None
        self._loaded: LoadedBatch | None = None
        self._lock = threading.Lock()

    def current(self) -> LoadedBatch | None:
        try:
            stat = self.manifest.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._loaded = self._load()
                    self._stamp = stamp
        return self._loaded

    def _load(self) -> LoadedBatch:
        manifest = json.loads(self.manifest.read_text())
        columns = ["playlist_id", "rank", "track_id", "score"]
        frame = pd.concat(
            [chunk[columns] for chunk in input_chunks(manifest["output"], 200_000, self.s3_endpoint_url)],
            ignore_index=True,
        ).sort_values(["playlist_id", "rank"], kind="stable")
        ids = frame["playlist_id"].astype(str).to_numpy()
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], dtype=int)
        ends = np.r_[starts[1:], len(ids)]
        playlists: dict[str, list[str]] = {}
        for chunk in input_chunks(manifest["input"], 200_000, self.s3_endpoint_url):
            for playlist_id, tracks in chunk.groupby("playlist_id", sort=False)["track_id"]:
                playlists.setdefault(str(playlist_id), []).extend(tracks.astype(str).tolist())
        return LoadedBatch(
            model_version=str(manifest["model_version"]),
            batch_run_id=str(manifest["batch_run_id"]),
            output=str(manifest["output"]),
            k=int(manifest["k"]),
            slices={ids[s]: (int(s), int(e)) for s, e in zip(starts, ends, strict=True)},
            track_ids=frame["track_id"].astype(str).to_numpy(),
            scores=frame["score"].to_numpy(dtype=np.float64),
            playlists=playlists,
        )
