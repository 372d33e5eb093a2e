"""Benchmark `songrec monitor`: one monitoring run over a window of 10,000 /recommend requests.

Builds a scratch SQLite store with a synthetic request log drawn from the real catalog (ids and
feature rows per request, 10 recommendations each, feedback on every one), then times
run_monitor with the trained bundle (models/bundle/bundle.pkl; run `make run` first).
Target: <= 15 s. Prints the time and what the run found.

    python bench/monitoring.py [--requests 10000] [--store postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from results import run_and_record  # bench/results.py
from sqlalchemy import insert

from songrec.config.manager import ConfigurationManager
from songrec.core.io import load_model
from songrec.monitoring.monitor import run_monitor
from songrec.store.engine import connect
from songrec.store.schema import feedback_table, recommendations_table, requests_table


def synthetic_log(
    url: str, catalog, numeric: list[str], n_requests: int, now: datetime, seed: int = 0
) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    ids = catalog["track_id"].to_numpy()
    features = catalog[numeric].to_numpy(dtype=float)
    engine = connect(url)
    for start in range(0, n_requests, 1000):
        requests, recommendations, feedback = [], [], []
        for index in range(start, min(start + 1000, n_requests)):
            request_id = uuid.uuid4()
            picks = rng.choice(len(ids), size=16, replace=False)
            requests.append(
                {
                    "request_id": request_id,
                    "time": now - timedelta(seconds=86000 * (index + 1) / (n_requests + 1)),
                    "endpoint": "/recommend",
                    "status": 200,
                    "model_version": "1",
                    "input_track_ids": ids[picks[:8]].tolist(),
                    "n_feature_tracks": 2,
                    "input_tracks": [
                        dict(zip(numeric, features[p].tolist(), strict=True)) for p in picks[8:10]
                    ],
                    "k": 10,
                    "latency_ms": 3.0,
                }
            )
            for rank, position in enumerate(picks[6:16], 1):
                recommendations.append(
                    {"request_id": request_id, "rank": rank, "track_id": ids[position], "score": 0.5}
                )
                feedback.append(
                    {
                        "request_id": request_id,
                        "track_id": ids[position],
                        "event": "play" if rng.random() < 0.1 else "skip",
                        "time": now,
                    }
                )
        with engine.begin() as connection:
            connection.execute(insert(requests_table), requests)
            connection.execute(insert(recommendations_table), recommendations)
            connection.execute(insert(feedback_table), feedback)
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--store", default=None, help="an empty store URL (default: a scratch SQLite file)")
    args = parser.parse_args()
    manager = ConfigurationManager()
    bundle = load_model(manager.train().bundle)
    folder = Path(tempfile.mkdtemp(prefix="songrec-bench-monitor-"))
    try:
        url = args.store or f"sqlite:///{folder / 'events.db'}"
        now = datetime.now(UTC)
        started = time.perf_counter()
        synthetic_log(url, bundle.catalog, list(bundle.numeric_features), args.requests, now)
        print(
            f"wrote {args.requests} requests (10 recommendations and feedback each) in "
            f"{time.perf_counter() - started:.1f} s"
        )
        config = replace(
            manager.monitor(),
            event_store_url=url,
            reports_dir=folder / "reports",
            max_window_requests=args.requests,
        )
        started = time.perf_counter()
        result = run_monitor(config, bundle, "1", now=now)
        seconds = time.perf_counter() - started
        summary = result.summary()
        print(
            f"monitor over {summary['requests']} requests ({summary['tracks_compared']} tracks compared): "
            f"{seconds:.1f} s   (target <= 15 s)"
        )
        print(
            f"  dataset drift {summary['dataset_drift']}, drift share {summary['drift_share']}, "
            f"hit rate {summary['hit_rate']:.3f}, similarity {summary['mean_similarity']:.3f}"
        )
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_and_record("monitoring", main))
