"""Benchmark the recommender's quality with playlist-level cross-validation on the shipped data.

The evaluate stage measures continuation on one fifth of the eligible playlists (92 on the
shipped data), which leaves wide intervals. Here every eligible playlist is evaluated once:
the playlists are cut into K folds in the pipeline's own seeded order (fold 0 is the
pipeline's evaluation set), and for each fold the transform hides that fold's tracks, the
recommender is trained on what stays visible, and the fold's playlists are measured. It measures;
nothing is chosen from it (no parameter is tuned on these playlists).

Prints, per fold and pooled over all folds, Recall@K and NDCG@K with 95% bootstrap intervals
(over playlists). Run `make run` first (it reads data/validated/tracks.parquet).

    python bench/quality.py [--folds 5]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
from results import run_and_record  # bench/results.py

from songrec.config.manager import ConfigurationManager
from songrec.core.io import read_parquet
from songrec.evaluation.bootstrap import Evidence, interval
from songrec.evaluation.metrics import continuation_per_playlist
from songrec.stages.train import fit_recommender
from songrec.stages.transform import build_listings, eligible_playlists, transform_tracks

HEADLINE = ("recall_at_100", "ndcg_at_10", "recall_at_10")


def folds(ids: pd.Index, k: int) -> list[pd.Index]:
    """K contiguous blocks of the seeded order: fold 0 is the pipeline's evaluation set."""
    size = round(len(ids) / k)
    return [ids[i * size : (i + 1) * size if i < k - 1 else len(ids)].sort_values() for i in range(k)]


def playlist_evidence(per_playlist: dict[str, np.ndarray]) -> Evidence:
    empty = np.zeros(0, dtype=np.int64)
    return Evidence(per_playlist, empty, empty, 1, np.zeros(0), np.zeros(0))


def report(label: str, per_playlist: dict[str, np.ndarray], seed: int) -> None:
    evidence = playlist_evidence(per_playlist)
    cells = []
    for metric in HEADLINE:
        found = interval(evidence, metric, seed=seed)
        cells.append(f"{found.point:.4f} [{found.low:.4f}, {found.high:.4f}]")
    print(f"{label:<22}{evidence.n_playlists:>10}  " + "  ".join(f"{cell:>26}" for cell in cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    manager = ConfigurationManager()
    transform, train = manager.transform(), manager.train()
    if train.recommender.name != "hybrid":
        print("the cross-validation measures the hybrid recommender", file=sys.stderr)
        return 1
    tracks = read_parquet(transform.validated_tracks)
    ordered = eligible_playlists(build_listings(tracks, transform.schema), transform)
    print(
        f"playlist-level cross-validation: {len(ordered)} eligible playlists in {args.folds} folds "
        f"(fold 0 = the pipeline's evaluation playlists); 95% bootstrap intervals over playlists"
    )
    print(f"{'':<22}{'playlists':>10}  " + "  ".join(f"{m:>26}" for m in HEADLINE))
    pooled: dict[str, list[np.ndarray]] = {}
    for number, fold in enumerate(folds(ordered, args.folds)):
        started = time.perf_counter()
        result = transform_tracks(tracks, transform, eval_ids=fold)
        recommender = fit_recommender(train, result.catalog, result.memberships, reference=None)
        per_playlist = continuation_per_playlist(
            recommender, pd.Index(result.catalog["track_id"]), result.eval_playlists, manager.evaluate().k
        )
        report(f"fold {number} ({time.perf_counter() - started:.0f} s)", per_playlist, manager.seed)
        for metric, values in per_playlist.items():
            pooled.setdefault(metric, []).append(values)
    report("all folds", {m: np.concatenate(v) for m, v in pooled.items()}, manager.seed)
    return 0


if __name__ == "__main__":
    sys.exit(run_and_record("quality", main))
