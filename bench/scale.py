"""Benchmark how the pipeline scales: every stage on synthetic playlists of several sizes.

For each size, writes `songrec synth --playlists N` into a scratch copy of the project (made by
bench/pipeline.py's scratch_project; `ingest.source` points at the synthetic file, sha256 null),
then runs the stages one `songrec run <stage>` process each, and measures per stage: wall
seconds of the process, its CPU seconds (user + system, the stage's process and the children
it waited for), the stage's own wall seconds inside the process (imports excluded, from
SONGREC_TIMINGS_FILE) and the peak RSS. Between consecutive sizes it prints each stage's growth
exponent log(cpu2/cpu1) / log(rows2/rows1), rows being the source rows (one per track and
playlist); the same for the in-stage seconds, which leave out the import time that dominates
small sizes. Exponents above 1.1 are marked: the target is at most 1.1 between 100k and 1M
playlists (issue 13).

A stage that runs longer than --stage-timeout is killed and shown as "> N s"; the later stages
of that size are skipped, as they need its output, and so are the larger sizes. Ctrl-C or
SIGTERM kills the stage running and prints what was measured (not recorded). With
--skip-reference, train_reference still runs (train and evaluate read its model) but with a few
trees, and is not shown. evaluate logs to the scratch copy's own MLflow store (SQLite), no
server. The code measured is the work tree's src/ as it was when the run started (a copy put
ahead of the editable install on PYTHONPATH, so that edits during the run do not mix in), with
OMP_NUM_THREADS as in the shell (else the CLI's 1).

    python bench/scale.py [--playlists 300,1000,3000] [--stages train,evaluate] [--skip-reference]
                          [--stage-timeout 600] [--seed 0] [--keep]
    OMP_NUM_THREADS=2 python bench/scale.py --playlists 10000,100000,1000000 --skip-reference

Figures go to bench/RESULTS.md, section "scale" (bench/results.py).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from pipeline import BIN, ROOT, scratch_project  # bench/pipeline.py
from results import run_and_record  # bench/results.py

from songrec.orchestration.overrides import apply_params_overrides
from songrec.orchestration.registry import STAGE_NAMES

TARGET_EXPONENT = 1.1  # issue 13: CPU time grows at most like rows^1.1 (100k -> 1M playlists)
REFERENCE_TREES = 5  # --skip-reference: a reference model train and evaluate can read, quickly
SYNTH_FILE = "data/source/synthetic.csv.gz"


@dataclass
class Measure:
    wall: float
    cpu: float
    peak_mib: float
    code: int | None  # None: killed at the timeout
    in_stage: float | None = None  # the stage's own seconds (SONGREC_TIMINGS_FILE)

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass
class Size:
    playlists: int
    rows: int | None = None
    tracks: int | None = None
    synth: Measure | None = None
    stages: dict[str, Measure | None] = dataclasses.field(default_factory=dict)  # None: skipped (not run)
    failure: str | None = None
    note: str | None = None
    interrupted: bool = False  # Ctrl-C or SIGTERM: this size and the later ones stop there
    timed_out: str | None = None  # the stage killed at the timeout


def progress(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure(command: list[str], cwd: Path, env: dict[str, str], timeout: float, log: Path) -> Measure:
    """Run `command` (output to `log`) in its own process group; kill the group at `timeout`."""
    started = time.perf_counter()
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    killed = False
    try:
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout:
                os.killpg(process.pid, signal.SIGKILL)
                _, status, usage = os.wait4(process.pid, 0)
                killed = True
                break
            time.sleep(0.02)
    except BaseException:  # Ctrl-C: the child is in its own session and would not get it
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.killpg(process.pid, signal.SIGKILL)
            os.wait4(process.pid, 0)
        raise
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    # Workers it left behind would share the CPUs with the next stage.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return Measure(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_mib=usage.ru_maxrss / 1024,  # Linux reports KiB
        code=None if killed else process.returncode,
    )


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def catalog_tracks(project: Path) -> int | None:
    import pyarrow.parquet as pq

    from songrec.config.manager import ConfigurationManager

    path = ConfigurationManager(project).transform().catalog
    return pq.ParquetFile(path).metadata.num_rows if path.exists() else None


def run_size(
    playlists: int, run_stages: list[str], args: argparse.Namespace, folder: Path, env: dict[str, str]
) -> Size:
    size = Size(playlists=playlists)
    project = scratch_project(folder)
    logs = folder / "logs"
    logs.mkdir()
    config_file = project / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["ingest"].update(source=SYNTH_FILE, sha256=None)
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    if args.skip_reference:  # through the project's own checked override, as `dvc exp run -S`
        apply_params_overrides({"train_reference.n_estimators": REFERENCE_TREES}, project)
    env = {**env, "SONGREC_ROOT": str(project), "SONGREC_TIMINGS_FILE": str(folder / "timings.jsonl")}

    progress(f"{playlists} playlists: synth")
    log = logs / "synth.log"
    command = [str(BIN / "songrec"), "synth", "--playlists", str(playlists), "--seed", str(args.seed)]
    command += ["--out", str(project / SYNTH_FILE)]
    try:
        size.synth = measure(command, project, env, args.stage_timeout, log)
    except KeyboardInterrupt:
        size.interrupted, size.note = True, "interrupted during synth"
        return size
    if not size.synth.ok:
        size.failure = f"synth {'timed out' if size.synth.code is None else 'failed'}:\n{tail(log)}"
        return size
    found = re.search(r"(\d+) playlists, (\d+) rows", log.read_text())
    size.rows = int(found.group(2)) if found else None

    stopped = False
    for name in run_stages:
        if stopped:
            size.stages[name] = None
            continue
        progress(f"{playlists} playlists ({size.rows} rows): {name}")
        log = logs / f"{name}.log"
        try:
            result = measure([str(BIN / "songrec"), "run", name], project, env, args.stage_timeout, log)
        except KeyboardInterrupt:
            size.interrupted, size.note, stopped = True, f"interrupted during {name}", True
            size.stages[name] = None
            continue
        timings = folder / "timings.jsonl"
        if result.ok and timings.exists():
            records = [json.loads(line) for line in timings.read_text().splitlines()]
            result.in_stage = next((r["seconds"] for r in reversed(records) if r["stage"] == name), None)
        size.stages[name] = result
        outcome = f"{result.wall:.1f} s" if result.ok else "did not finish"
        progress(f"{playlists} playlists: {name} {outcome}")
        if name == "transform" and result.ok:
            size.tracks = catalog_tracks(project)
        if result.code is None:
            size.note = f"{name} killed after {args.stage_timeout:.0f} s: later stages skipped"
            size.timed_out = name
            stopped = True
        elif not result.ok:
            size.failure = f"{name} failed (exit {result.code}):\n{tail(log)}"
            stopped = True
    return size


def exponent(
    small: float | None, large: float | None, rows_small: int | None, rows_large: int | None
) -> float | None:
    if not small or not large or not rows_small or not rows_large or rows_large == rows_small:
        return None
    return math.log(large / small) / math.log(rows_large / rows_small)


def cell(measure: Measure | None, timeout: float, field: str, fmt: str) -> str:
    if measure is None:
        return "skipped" if field == "wall" else "-"
    if measure.code is None:
        return f"> {timeout:.0f} s" if field == "wall" else "-"
    if not measure.ok:
        return f"exit {measure.code}" if field == "wall" else "-"
    value = getattr(measure, field)
    return "-" if value is None else format(value, fmt)


def print_report(sizes: list[Size], shown: list[str], args: argparse.Namespace) -> None:
    threads = os.environ.get("OMP_NUM_THREADS", "1 (the CLI's default)")
    print(f"songrec pipeline on `songrec synth` data (seed {args.seed}), one process per stage")
    print(f"OMP_NUM_THREADS={threads}, stage timeout {args.stage_timeout:.0f} s")
    if args.skip_reference:
        print(f"train_reference: {REFERENCE_TREES} trees (--skip-reference), not shown")
    print()
    print("CPU s: user + system of the stage's process; stage s: wall inside the stage, no imports")
    print(f"{'playlists':>10}{'rows':>11}{'tracks':>10}  {'stage':<16}{'wall s':>9}{'CPU s':>9}", end="")
    print(f"{'stage s':>9}{'peak MiB':>10}")
    for size in sizes:
        first = f"{size.playlists:>10,}{_int(size.rows):>11}{_int(size.tracks):>10}"
        blank = " " * len(first)
        lines = [("(synth)", size.synth)] + [(name, size.stages.get(name)) for name in shown]
        for index, (name, result) in enumerate(lines):
            if name != "(synth)" and name not in size.stages:
                continue
            print(f"{first if index == 0 else blank}  {name:<16}", end="")
            print(f"{cell(result, args.stage_timeout, 'wall', '.1f'):>9}", end="")
            print(f"{cell(result, args.stage_timeout, 'cpu', '.1f'):>9}", end="")
            print(f"{cell(result, args.stage_timeout, 'in_stage', '.1f'):>9}", end="")
            print(f"{cell(result, args.stage_timeout, 'peak_mib', '.0f'):>10}")
        for message in (size.note, size.failure):
            if message:
                print(f"{blank}  {message.splitlines()[0]}")
    pairs = [(a, b) for a, b in itertools.pairwise(sizes) if a.rows and b.rows]
    if not pairs:
        return
    for title, field in (("CPU s", "cpu"), ("stage s", "in_stage")):
        print()
        print(f"growth exponent of {title}: log(t2/t1) / log(rows2/rows1)   (* above {TARGET_EXPONENT})")
        print(f"{'stage':<16}" + "".join(f"{f'{a.playlists}->{b.playlists}':>16}" for a, b in pairs))
        for name in [*shown, "total"]:
            row = f"{name:<16}"
            for a, b in pairs:
                value = exponent(_value(a, name, field, shown), _value(b, name, field, shown), a.rows, b.rows)
                mark = "*" if value is not None and value > TARGET_EXPONENT else " "
                row += f"{'-' if value is None else f'{value:.2f}':>15}{mark}"
            print(row)


def _value(size: Size, name: str, field: str, shown: list[str]) -> float | None:
    """The stage's `field`, or the sum over the shown stages for "total" (None unless all ran)."""
    if name == "total":
        values = [_value(size, stage, field, shown) for stage in shown]
        return None if any(v is None for v in values) else sum(v for v in values if v is not None)
    result = size.stages.get(name)
    return getattr(result, field) if result is not None and result.ok else None


def _int(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--playlists", default="300,1000,3000", help="comma-separated sizes (default: %(default)s)"
    )
    parser.add_argument(
        "--stages", default=",".join(STAGE_NAMES), help="comma-separated stages to measure (default: all)"
    )
    parser.add_argument(
        "--skip-reference", action="store_true", help="fit train_reference with a few trees, unmeasured"
    )
    parser.add_argument("--stage-timeout", type=float, default=600, help="seconds (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="songrec synth's seed (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copies and print where")
    args = parser.parse_args()
    try:
        sizes = sorted({int(n.replace("_", "")) for n in args.playlists.split(",") if n.strip()})
    except ValueError:
        parser.error(f"--playlists: not a list of integers: {args.playlists!r}")
    wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGE_NAMES]
    if unknown or not wanted or min(sizes, default=0) < 1:
        parser.error(f"--stages: one or more of {', '.join(STAGE_NAMES)}; --playlists: positive sizes")
    # The stages up to the last wanted one all run (each reads its predecessors' outputs).
    run_stages = list(STAGE_NAMES[: max(STAGE_NAMES.index(s) for s in wanted) + 1])
    shown = [s for s in run_stages if s in wanted and not (args.skip_reference and s == "train_reference")]

    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "MLFLOW_DISABLE_TELEMETRY": "true"}
    for name in (
        "PYTHONDONTWRITEBYTECODE",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        "DAGSHUB_REPO_OWNER",
        "DAGSHUB_REPO_NAME",
        "DAGSHUB_USER_TOKEN",
    ):
        env.pop(name, None)
    folder = Path(tempfile.mkdtemp(prefix="songrec-scale-"))
    results: list[Size] = []
    try:
        # Every stage of every size runs the same code: a snapshot of src/ taken now, ahead of
        # the editable install, so that edits to the work tree during the run do not mix in.
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
        shutil.copytree(ROOT / "src", folder / "src", ignore=ignore)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder / "src"), env.get("PYTHONPATH")]))
        # SIGTERM stops like Ctrl-C: the stage running is killed, what was measured is printed.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        for playlists in sizes:
            timed_out = next((size.timed_out for size in results if size.timed_out), None)
            if timed_out:  # a larger size would only hit the timeout again
                note = f"not run: {timed_out} exceeded the timeout at a smaller size"
                results.append(Size(playlists=playlists, note=note))
                continue
            results.append(run_size(playlists, run_stages, args, folder / f"p{playlists}", env))
            if not args.keep:
                shutil.rmtree(folder / f"p{playlists}", ignore_errors=True)
            if results[-1].interrupted:
                break
        print_report(results, shown, args)
        failures = [size.failure for size in results if size.failure]
        for failure in failures:
            print(f"\n{failure}", file=sys.stderr)
        if args.keep:
            print(f"scratch projects kept in {folder}", file=sys.stderr)
        if results[-1].interrupted:
            print("interrupted: not recorded", file=sys.stderr)
            return 130
        return 1 if failures else 0
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_and_record("scale", main))
