"""Benchmark the pipeline: a full `dvc repro` on the shipped data, per stage, and a no-op repro;
then the same work as the Airflow DAG songrec_training under `dag.test()`.

Runs in scratch copies of the project (git + DVC initialised there), so the workspace, its
DVC cache and its MLflow store are left alone. Prints wall time and peak memory (RSS) per
stage and in total, the total without the reference baseline's stage, a no-op repro, and the
Airflow run's wall time next to dvc repro's (target: at most 1.5x).

    python bench/pipeline.py [--skip-airflow]      # or: make bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import run_and_record  # bench/results.py

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPY = ("config", "src", "dags", "params.yaml", "dvc.yaml", ".dvcignore", "data/source", "data/additions")

# Runs in a child interpreter: Airflow must be configured before it is first imported.
AIRFLOW_CHILD = """
import os, sys, time
from airflow.utils import db
db.initdb()
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag("songrec_training")
started = time.perf_counter()
run = dag.test()
print("DAGTEST", time.perf_counter() - started, run.state)
"""


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MiB) of the process tree, exit code."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, process.returncode


def scratch_project(folder: Path) -> Path:
    project = folder / "songrec"
    folder.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        source = ROOT / name
        target = project / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    for command in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"]):
        subprocess.run(command, cwd=project, check=True)
    return project


def airflow_run(folder: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall time of songrec_training under dag.test() in a fresh scratch copy."""
    project = scratch_project(folder / "airflow")
    home = folder / "airflow-home"
    child_env = {
        **env,
        "SONGREC_ROOT": str(project),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    result = subprocess.run(
        [sys.executable, "-c", AIRFLOW_CHILD], cwd=project, env=child_env, capture_output=True, text=True
    )
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("DAGTEST")), None)
    if line is None:
        raise SystemExit(f"dag.test() did not finish:\n{result.stderr[-3000:]}")
    _, seconds, state = line.split()
    return float(seconds), state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy and print where it is")
    parser.add_argument("--skip-airflow", action="store_true", help="skip the dag.test() comparison")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="songrec-bench-"))
    try:
        project = scratch_project(folder)
        timings = folder / "timings.jsonl"
        env = {
            **os.environ,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "SONGREC_TIMINGS_FILE": str(timings),
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for name in ("MLFLOW_TRACKING_URI", "DAGSHUB_REPO_OWNER", "DAGSHUB_REPO_NAME", "DAGSHUB_USER_TOKEN"):
            env.pop(name, None)
        wall, peak, code = timed([str(BIN / "dvc"), "repro"], project, env)
        if code != 0:
            print(f"dvc repro failed with exit code {code}", file=sys.stderr)
            return code
        stages = [json.loads(line) for line in timings.read_text().splitlines()]
        noop_wall, noop_peak, _ = timed([str(BIN / "dvc"), "repro"], project, env)
        print(f"full dvc repro on the shipped data ({sum(1 for _ in stages)} stages)")
        print(f"{'stage':<18}{'process s':>10}{'in-stage s':>12}{'peak MiB':>10}")
        for stage in stages:
            print(
                f"{stage['stage']:<18}{stage['process_seconds']:>10.1f}{stage['seconds']:>12.1f}{stage['peak_mib']:>10}"
            )
        reference = sum(s["process_seconds"] for s in stages if s["stage"] == "train_reference")
        print(f"{'total (dvc repro)':<18}{wall:>10.1f}{'':>12}{peak:>10.0f}")
        print(f"{'total w/o reference':<18}{wall - reference:>10.1f}   (target <= 60 s)")
        print(f"{'no-op dvc repro':<18}{noop_wall:>10.1f}{'':>12}{noop_peak:>10.0f}   (target <= 3 s)")
        if not args.skip_airflow:
            airflow_wall, state = airflow_run(folder, env)
            print(
                f"\nsongrec_training under dag.test() (same work, fresh copy): {airflow_wall:.1f} s ({state})"
            )
            print(f"dag.test / dvc repro = {airflow_wall / wall:.2f}x   (target <= 1.5x)")
        if args.keep:
            print(f"scratch project kept at {project}")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_and_record("pipeline", main))
