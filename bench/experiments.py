"""Experiments stay experiments: ten `dvc exp run`s with different params, then one release.

In a scratch git + DVC copy of the project (on a sample of the shipped playlists, so that it
takes minutes), runs the pipeline once (its first version becomes champion), then ten
`dvc exp run --set-param` with different hyperparameters, and counts the moves of `champion`
in the registry after each; then `songrec promote` releases the last candidate through the
gate (the last experiment sets the committed value back, so that one candidate can pass).
Prints each experiment's candidate version, the champion after it, and the release.

    python bench/experiments.py [--playlists 60] [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from results import run_and_record  # bench/results.py

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPY = ("config", "src", "dags", "params.yaml", "dvc.yaml", ".dvcignore")


def sh(*command: str, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "MLFLOW_DISABLE_TELEMETRY": "true"}
    for name in ("MLFLOW_TRACKING_URI", "DAGSHUB_REPO_OWNER", "SONGREC_ROOT", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def scratch_project(folder: Path, playlists: int) -> Path:
    project = folder / "project"
    project.mkdir()
    for name in COPY:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(source, project / name)
    tracks = pd.read_csv(ROOT / "data" / "source" / "spotify_songs.csv.gz")
    chosen = pd.Series(tracks["playlist_id"].unique()).sort_values().sample(n=playlists, random_state=7)
    (project / "data" / "source").mkdir(parents=True)
    (project / "data" / "additions").mkdir()
    tracks[tracks["playlist_id"].isin(chosen)].to_csv(
        project / "data" / "source" / "spotify_songs.csv.gz", index=False, compression="gzip"
    )
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.email", "bench@songrec.invalid"],
        ["git", "config", "user.name", "songrec bench"],
        [str(BIN / "dvc"), "init", "-q"],
    ):
        sh(*command, cwd=project)
    # the sample's own checksum, and a reference fit of seconds (a baseline: not what is measured)
    sh(str(BIN / "python"), "-c", UNPIN, cwd=project)
    (project / ".gitignore").write_text("/mlruns/\n/var/\n")
    sh("git", "add", "-A", cwd=project)
    sh("git", "commit", "-q", "-m", "scratch", cwd=project)
    return project


UNPIN = """
import yaml
for path, changes in (("config/config.yaml", {("ingest", "sha256"): None}),
                      ("params.yaml", {("train_reference", "n_estimators"): 20})):
    data = yaml.safe_load(open(path))
    for (section, key), value in changes.items():
        data[section][key] = value
    yaml.safe_dump(data, open(path, "w"), sort_keys=False)
"""


def champion(project: Path) -> str:
    from mlflow import MlflowClient

    store = f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    return str(client.get_model_version_by_alias("songrec", "champion").version)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--playlists", type=int, default=60)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="songrec-bench-exp-"))
    try:
        project = scratch_project(folder, args.playlists)
        sh(str(BIN / "dvc"), "repro", cwd=project)
        first = champion(project)
        print(f"{args.playlists} playlists; after the first dvc repro: champion v{first}")
        moves = 0
        before = first
        # Other values first, then the committed one: its candidate equals the champion's model,
        # so the release has something the gate can pass (the others it may well refuse).
        committed = 300
        values = [60 + 20 * run for run in range(args.runs - 1)] + [committed]
        for value in values:
            sh(str(BIN / "dvc"), "exp", "run", "-S", f"train.genre.max_iter={value}", cwd=project)
            promotion = (project / "reports" / "promotion.json").read_text()
            candidate = promotion.split('"challenger_version": "', 1)[1].split('"', 1)[0]
            now = champion(project)
            moves += now != before
            print(f"dvc exp run -S train.genre.max_iter={value}: candidate v{candidate}, champion v{now}")
            before = now
        print(f"champion moves during {args.runs} experiments: {moves}")
        released = subprocess.run(
            [str(BIN / "songrec"), "promote"], cwd=project, capture_output=True, text=True,
            env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
        )  # fmt: skip
        print(f"songrec promote (exit {released.returncode}): {released.stdout.strip()}")
        print(f"champion after the release: v{champion(project)} (moves: {int(champion(project) != before)})")
        return 0 if moves == 0 else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_and_record("experiments", main))
