"""Benchmark the recommender's learning curve: validation quality and fit cost against how many
training playlists it learns its weights from (train.recommender.max_training_playlists).

On a project's processed data (its data/processed/, from `songrec run transform`), the training
side only: `songrec tune recommender`'s validation split (a seeded share of the training
playlists, part of each hidden; the evaluation playlists and the test split are never read).
For each size, the hybrid recommender with params.yaml's settings and that bound is fitted on
the rest and measured on the validation playlists: Recall@100 and NDCG@10 with a 95% interval
(normal, over playlists), the fit's wall and CPU seconds and the process's peak RSS so far.

    python bench/learning_curve.py                            # this checkout (`make run` first)
    python bench/learning_curve.py --sizes 250,500,1000,all
    # on synthetic data: a scratch project with songrec synth's playlists, kept
    python bench/scale.py --playlists 5000 --stages transform --keep
    python bench/learning_curve.py --project /tmp/songrec-scale-XXXX/p5000/songrec --label synth-5000

Figures go to bench/RESULTS.md, section "learning curve, <label>" (bench/results.py; label
"shipped" by default).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from results import run_and_record  # bench/results.py
from threadpoolctl import threadpool_limits

from songrec.config.manager import ConfigurationManager
from songrec.evaluation.metrics import continuation_per_playlist
from songrec.models.recommender.hybrid import HybridRecommender
from songrec.orchestration.tuning import PlaylistSplit
from songrec.orchestration.tuning_run import prepare

ROOT = Path(__file__).resolve().parents[1]


def interval(values: np.ndarray) -> str:
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{values.mean():.4f} ±{half:.4f}"


def measure(split: PlaylistSplit, manager: ConfigurationManager, size: int | None) -> list[str]:
    params = replace(manager.train().recommender, max_training_playlists=size)
    recommender = HybridRecommender.from_params(params, split.numeric, split.model_seed)
    started, cpu = time.perf_counter(), time.process_time()
    recommender.fit(split.catalog, split.fit_memberships)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    track_index = pd.Index(split.catalog["track_id"])
    per_playlist = continuation_per_playlist(recommender, track_index, split.validation, [10, 100])
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [
        "all" if size is None else str(size),
        interval(per_playlist["recall_at_100"]),
        interval(per_playlist["ndcg_at_10"]),
        f"{wall:.1f}",
        f"{cpu:.1f}",
        f"{peak_mib:.0f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT, help="project root (default: this checkout)")
    parser.add_argument("--sizes", default="50,100,200,all", help="comma-separated; all: no bound")
    parser.add_argument("--label", default="shipped", help="names the data in bench/RESULTS.md")
    parser.add_argument("--seed", type=int, default=0, help="validation split's seed (default: %(default)s)")
    args = parser.parse_args()
    sizes = [None if s.strip() == "all" else int(s) for s in args.sizes.split(",") if s.strip()]
    manager = ConfigurationManager(args.project.resolve())
    split = prepare(manager, "recommender", args.seed)
    assert isinstance(split, PlaylistSplit)
    fit_playlists = split.fit_memberships.loc[~split.fit_memberships["evaluation"], "playlist_id"].nunique()
    print(
        f"recommender learning curve on {args.project.resolve()}: {len(split.catalog)} catalog tracks, "
        f"{fit_playlists} training playlists to learn from, "
        f"{split.validation['playlist_id'].nunique()} validation playlists (seed {args.seed}); "
        "intervals: 95%, over validation playlists; one thread"
    )
    header = ["max_training_playlists", "Recall@100", "NDCG@10", "fit wall s", "fit CPU s", "peak RSS MiB"]
    rows = [header]
    with threadpool_limits(1):
        for size in sizes:
            rows.append(measure(split, manager, size))
            print("  measured", rows[-1][0], file=sys.stderr, flush=True)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    label = sys.argv[sys.argv.index("--label") + 1] if "--label" in sys.argv[:-1] else "shipped"
    sys.exit(run_and_record(f"learning curve, {label}", main))
