"""Choose the recommender's default diversity setting (train.recommender.max_per_artist) on the
training side: what each setting costs in accuracy, on validation playlists carved from the
training playlists only (the split `songrec tune recommender` uses; the evaluation playlists and
the test split are never read).

For each split seed, the recommender is fitted with params.yaml's values on what the split leaves
visible, and its lists for the validation playlists are spread with every setting of
DIVERSITY_SETTINGS (10: no cap). Prints Recall@100, NDCG@10, distinct artists in the top 10,
catalog coverage and novelty per setting (mean over the seeds), and the setting the rule picks:
the strongest cap (fewest tracks per artist) whose Recall@100 and NDCG@10 are both within 3% of
no cap and whose lists show at least 5 distinct artists in the top 10 on average. NDCG@10 is in
the rule because a cap reorders the first page: Recall@100 hardly sees it. Run `make run` first.

    python bench/diversity.py [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
from results import run_and_record  # bench/results.py

from songrec.config.manager import ConfigurationManager
from songrec.evaluation.slices import DIVERSITY_SETTINGS, diversity_tradeoff
from songrec.orchestration.tuning import PlaylistSplit
from songrec.orchestration.tuning_run import prepare
from songrec.stages.train import fit_recommender

MAX_COST = 0.03  # of Recall@100 and of NDCG@10, against no cap
MIN_DISTINCT_ARTISTS = 5.0  # in the top 10, on average


def tradeoff(manager: ConfigurationManager, split: PlaylistSplit) -> dict[str, dict[str, float]]:
    config = manager.train()
    recommender = fit_recommender(config, split.catalog, split.fit_memberships, None)
    index = pd.Index(split.catalog["track_id"])
    return diversity_tradeoff(recommender, index, split.validation, split.catalog, 100)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="validation split seeds")
    args = parser.parse_args()
    manager = ConfigurationManager()
    tables = []
    for seed in args.seeds:
        split = prepare(manager, "recommender", seed)
        assert isinstance(split, PlaylistSplit)
        tables.append(tradeoff(manager, split))
        playlists = split.validation["playlist_id"].nunique()
        print(f"  split seed {seed}: {playlists} validation playlists", file=sys.stderr)
    columns = list(tables[0][str(DIVERSITY_SETTINGS[0])])
    mean = {
        setting: {column: float(np.mean([t[setting][column] for t in tables])) for column in columns}
        for setting in tables[0]
    }
    print(
        f"Validation playlists carved from the training playlists (split seeds {args.seeds}); "
        "mean over the seeds. max_per_artist: at most that many tracks of one artist per page of 10."
    )
    header = "".join(f"{c:>24}" for c in columns)
    print(f"\n{'max_per_artist':<16}{header}{'cost R@100':>12}{'cost N@10':>11}")
    free = mean[str(DIVERSITY_SETTINGS[-1])]

    def cost(row: dict[str, float], metric: str) -> float:
        return 1.0 - row[metric] / free[metric] if free[metric] else 0.0

    for setting, row in mean.items():
        label = f"{setting} (no cap)" if setting == str(DIVERSITY_SETTINGS[-1]) else setting
        values = "".join(f"{row[c]:>24.4f}" for c in columns)
        print(f"{label:<16}{values}{cost(row, 'recall_at_100'):>11.1%}{cost(row, 'ndcg_at_10'):>11.1%}")
    allowed = [
        int(setting)
        for setting, row in mean.items()
        if max(cost(row, "recall_at_100"), cost(row, "ndcg_at_10")) <= MAX_COST
        and row["distinct_artists_at_10"] >= MIN_DISTINCT_ARTISTS
    ]
    chosen = min(allowed) if allowed else DIVERSITY_SETTINGS[-1]
    print(
        f"\nrule: the fewest tracks per artist whose Recall@100 and NDCG@10 are within {MAX_COST:.0%} of no "
        f"cap and whose top 10 shows {MIN_DISTINCT_ARTISTS:g}+ artists on average: max_per_artist = {chosen}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_and_record("diversity", main))
