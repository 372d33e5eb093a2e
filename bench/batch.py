"""Benchmark `songrec batch recommend`: playlists per second and peak memory.

Two inputs, scored with the workspace's bundle (models/bundle/bundle.pkl, from `make run`):
the shipped catalog's 471 playlists (target: 10 s), and N synthetic playlists (default
100,000; target: 3 minutes) whose lengths follow real playlist data (5 to 250 tracks, mean
about 66) and whose tracks are drawn from the catalog by popularity (a heavy tail). Each run is
its own `songrec batch` process, so the wall time includes loading the model, and the peak
RSS is the process's own: it is bounded by the chunk size (batch.chunk_rows), not the input.

    python bench/batch.py [--playlists 100000] [--chunk-rows 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from results import run_and_record  # bench/results.py

if TYPE_CHECKING:
    import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def synthetic_playlists(catalog: pd.DataFrame, n: int, seed: int = 11) -> pd.DataFrame:
    """`n` playlists of catalog tracks: lengths 5-250 (lognormal, mean about 66), tracks drawn
    with probability growing with popularity, so a few tracks are in many playlists."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(mean=3.95, sigma=0.75, size=n).astype(int), 5, 250)
    weights = (catalog["popularity"].to_numpy(dtype=np.float64) + 1.0) ** 2
    weights /= weights.sum()
    positions = rng.choice(len(catalog), size=int(lengths.sum()), p=weights)
    ids = catalog["track_id"].to_numpy()
    return pd.DataFrame(
        {
            "playlist_id": np.repeat([f"synthetic-{i:07d}" for i in range(n)], lengths),
            "track_id": ids[positions],
        }
    )


def run_batch(input_file: Path, output: Path, bundle: Path, chunk_rows: int) -> tuple[float, float, dict]:
    """Wall seconds and peak RSS (MiB) of one `songrec batch recommend` process, and its report."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [
        *(str(BIN / "songrec"), "batch", "recommend", "--json", "--bundle", str(bundle)),
        *("--input", str(input_file), "--output", str(output), "--chunk-rows", str(chunk_rows)),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    out = process.stdout.read() if process.stdout else ""
    err = process.stderr.read() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"songrec batch failed:\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024, json.loads(out)


def write_synthetic(path: Path, n: int) -> None:
    """Runs in a child process, so the benchmark's own process stays small (see main)."""
    import pandas as pd

    catalog = pd.read_parquet(
        ROOT / "data" / "processed" / "catalog.parquet", columns=["track_id", "popularity"]
    )
    synthetic_playlists(catalog, n).to_parquet(path, row_group_size=100_000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--playlists", type=int, default=100_000, help="synthetic playlists (default 100,000)"
    )
    parser.add_argument(
        "--chunk-rows", type=int, default=2000, help="rows per chunk (config: batch.chunk_rows)"
    )
    parser.add_argument("--write-synthetic", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_synthetic:
        write_synthetic(args.write_synthetic, args.playlists)
        return 0
    bundle = ROOT / "models" / "bundle" / "bundle.pkl"
    memberships = ROOT / "data" / "processed" / "memberships.parquet"
    if not bundle.exists() or not memberships.exists():
        print("run `make run` first: the benchmark scores with models/bundle/bundle.pkl", file=sys.stderr)
        return 1
    # A child's peak RSS (wait4) counts what it inherited at fork: this process holds no data.
    print(f"songrec batch recommend, one process per input, k = config batch.k, chunk {args.chunk_rows} rows")
    header = f"{'input':<30}{'playlists':>10}{'rows in':>11}{'wall s':>9}{'playlists/s':>13}{'peak MiB':>10}"
    print(f"{header}  target")
    with tempfile.TemporaryDirectory(prefix="songrec-bench-batch-") as folder:
        synthetic = Path(folder) / "synthetic.parquet"
        command = [
            sys.executable,
            __file__,
            "--write-synthetic",
            str(synthetic),
            "--playlists",
            str(args.playlists),
        ]
        subprocess.run(command, check=True)
        cases = [
            ("shipped catalog playlists", memberships, "<= 10 s"),
            (f"synthetic ({args.playlists:,})", synthetic, "<= 180 s"),
        ]
        for name, path, target in cases:
            wall, peak, report = run_batch(path, Path(folder) / "out.parquet", bundle, args.chunk_rows)
            playlists, rows = report["items"], report["rows_read"]
            rate = playlists / wall
            print(f"{name:<30}{playlists:>10,}{rows:>11,}{wall:>9.1f}{rate:>13,.0f}{peak:>10,.0f}  {target}")
            print(f"  in-process {report['seconds']:.1f} s (the rest: start-up and loading the model)")
    return 0


if __name__ == "__main__":
    if "--write-synthetic" in sys.argv:  # the data-making child: nothing to record
        sys.exit(main())
    sys.exit(run_and_record("batch", main))
