"""The `songrec` command: one entry point for the pipeline, the API, monitoring and Airflow."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

from songrec.cli import models, scoring
from songrec.cli.common import load_config
from songrec.cli.labels import labels
from songrec.cli.stream import stream
from songrec.cli.synth import synth
from songrec.core.errors import SongrecError
from songrec.orchestration.registry import STAGE_NAMES

if TYPE_CHECKING:  # the command starts fast: configuration loads when a command runs
    pass

log = logging.getLogger("songrec")


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("urllib3", "botocore", "s3fs", "fsspec", "alembic", "git", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class SongrecGroup(click.Group):
    """Turns songrec's own errors into one readable message and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SongrecError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=SongrecGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(package_name="songrec")
def main(verbose: bool) -> None:
    """songrec: train, evaluate, serve and watch a music recommender."""
    # OpenMP threads (scikit-learn's gradient boosting) spin while they wait, which starves a
    # process sharing the cores (a server, a DVC or Airflow sibling); passive waiting does not.
    # Set here, before any command loads scikit-learn.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    configure_logging(verbose)


# --------------------------------------------------------------------------- pipeline


@main.command()
@click.argument("stage", type=click.Choice([*STAGE_NAMES, "all"]))
def run(stage: str) -> None:
    """Run one pipeline STAGE (as dvc.yaml and the Airflow DAG do), or `all` of them in order."""
    from songrec.orchestration.registry import STAGES, get_stage

    if "OMP_NUM_THREADS" not in os.environ:
        # One thread per stage process: stages share the machine with Airflow, MLflow and the API,
        # and a single thread beat two contended ones.
        os.environ["OMP_NUM_THREADS"] = "1"
    manager = load_config()
    for entry in STAGES if stage == "all" else (get_stage(stage),):
        started = time.perf_counter()
        summary = entry.run(manager)
        click.echo(f"{entry.name}: {json.dumps(summary, default=str)}")
        if manager.environment.timings_file is not None:
            _record_timing(manager.environment.timings_file, entry.name, time.perf_counter() - started)


def _record_timing(target: Path, stage: str, seconds: float) -> None:
    """Append the stage's wall time and peak memory to `target` (SONGREC_TIMINGS_FILE, benchmarks)."""
    import resource

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    record = {
        "stage": stage,
        "seconds": round(seconds, 2),
        "process_seconds": _process_age(),
        "peak_mib": round(peak_mib),
    }
    with open(target, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _process_age() -> float | None:
    """Seconds since this process started, imports included (Linux /proc), else None."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return round(uptime - ticks / os.sysconf("SC_CLK_TCK"), 2)


@main.group()
def pipeline() -> None:
    """Inspect the stage registry and the dvc.yaml generated from it."""


@pipeline.command("show")
def pipeline_show() -> None:
    """List the stages in order with what they read and write."""
    from songrec.orchestration.registry import STAGES

    manager = load_config()
    for index, stage in enumerate(STAGES, 1):
        click.echo(f"{index}. {stage.name}: {stage.description}")
        for label, paths in (("reads", stage.deps(manager)), ("writes", stage.outs(manager))):
            if paths:
                click.echo(f"     {label}: {', '.join(manager.relative(p) for p in paths)}")


@pipeline.command("dvc-yaml")
@click.option("--check", is_flag=True, help="Exit 1 if dvc.yaml differs from the registry.")
def pipeline_dvc_yaml(check: bool) -> None:
    """Write dvc.yaml from the stage registry (or check that it matches)."""
    from songrec.orchestration.registry import dvc_pipeline

    manager = load_config()
    expected = dvc_pipeline(manager)
    path = manager.root / "dvc.yaml"
    if check:
        current = yaml.safe_load(path.read_text()) if path.exists() else None
        if current != expected:
            raise SongrecError("dvc.yaml differs from the stage registry: run `songrec pipeline dvc-yaml`")
        click.echo("dvc.yaml matches the stage registry")
        return
    header = (
        "# Generated from src/songrec/orchestration/registry.py by `songrec pipeline dvc-yaml`:"
        " edit the registry.\n"
    )
    path.write_text(header + yaml.safe_dump(expected, sort_keys=False, width=100))
    click.echo(f"wrote {manager.relative(path)}")


@main.command()
def remote() -> None:
    """Point DVC at the remote the environment names (S3, DagsHub, or the local default)."""
    import subprocess

    from songrec.orchestration.dvc_remote import remote_commands

    manager = load_config()
    description, commands = remote_commands(manager.environment)
    for command in commands:
        result = subprocess.run(command, cwd=manager.root, capture_output=True, text=True)
        unset_missing = "--unset" in command and result.returncode != 0
        if result.returncode != 0 and not unset_missing:
            raise SongrecError(f"{' '.join(command[:4])} failed: {result.stderr.strip()}")
    click.echo(f"DVC remote: {description}")


@main.command()
@click.option("--host", default=None, help="Interface to bind (default: serve.host in config.yaml).")
@click.option("--port", default=None, type=int, help="Port (default: serve.port in config.yaml).")
@click.option(
    "--bundle",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serve this bundle file instead of the registry's champion (or set SONGREC_BUNDLE).",
)
def serve(host: str | None, port: int | None, bundle: Path | None) -> None:
    """Start the HTTP API and the web page on the champion model (it never trains)."""
    from songrec.serving.server import run_server

    run_server(load_config(), host=host, port=port, bundle=bundle)


@main.command()
@click.option("--port", default=8080, show_default=True, help="Port of Airflow's UI and API.")
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=None,
    help="AIRFLOW_HOME (default: airflow_home/ in the project, or $SONGREC_AIRFLOW_HOME).",
)
def airflow(port: int, home: Path | None) -> None:
    """Run Airflow standalone (SQLite) on songrec's DAGs: prints the URL and login; Ctrl-C stops."""
    from songrec.orchestration import standalone as airflow_local

    manager = load_config()
    home = home or manager.environment.airflow_home or manager.root / "airflow_home"
    airflow_local.run(manager.root, home.resolve(), port, click.echo)


@main.command()
@click.option("--now", default=None, help="End of the window, ISO 8601 (default: now).")
@click.option("--window-hours", type=float, default=None, help="Window length (default: config.yaml).")
@click.option("--drift-share", type=float, default=None, help="Share of drifted features that is drift.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (for machines).")
def monitor(now: str | None, window_hours: float | None, drift_share: float | None, as_json: bool) -> None:
    """Drift and online quality of recent traffic against the served model; alerts; HTML report."""
    from datetime import datetime

    from songrec.monitoring.monitor import run_monitor, serving_model, with_overrides

    manager = load_config()
    config = with_overrides(manager.monitor(), {"window_hours": window_hours, "drift_share": drift_share})
    bundle, version = serving_model(manager)
    end = datetime.fromisoformat(now) if now else None
    result = run_monitor(config, bundle, version, now=end)
    click.echo(json.dumps(result.summary(), indent=2, default=str) if as_json else result.describe())


@main.command()
@click.option(
    "--api", default=None, help="The API, loopback only (default: serve.host and serve.port of config.yaml)."
)
@click.option(
    "--source",
    type=click.Choice(["new", "eval"]),
    default="new",
    show_default=True,
    help="new: playlists of tracks released since --since-year; eval: the evaluation playlists.",
)
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Source-format CSV of the listeners' tracks (default: the shipped data set).",
)
@click.option("--since-year", type=int, default=2019, show_default=True)
@click.option("--rate", type=float, default=10.0, show_default=True, help="Requests per second.")
@click.option("--max-requests", type=int, default=200, show_default=True)
@click.option("--max-seconds", type=float, default=60.0, show_default=True)
@click.option("--k", type=int, default=20, show_default=True)
@click.option(
    "--label-delay",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds before a new track is labelled.",
)
@click.option("--seed", type=int, default=0, show_default=True)
def simulate(
    api: str | None,
    source: str,
    data: Path | None,
    since_year: int,
    rate: float,
    max_requests: int,
    max_seconds: float,
    k: int,
    label_delay: float,
    seed: int,
) -> None:
    """Send listener traffic, feedback and labels to a running API (bounded in count and time).

    Exits with 1 when the API could not be reached or most requests failed.
    """
    import pandas as pd

    from songrec.core.io import read_parquet
    from songrec.monitoring import simulate as sim

    manager = load_config()
    tracks = pd.read_csv(data or manager.root / "data" / "source" / "spotify_songs.csv.gz")
    if source == "new":
        playlists = sim.new_release_playlists(tracks, since_year, seed)
    else:
        playlists = sim.evaluation_playlists(read_parquet(manager.transform().eval_playlists), tracks)
    integers = manager.evaluate().integer_features
    serve = manager.serve()
    host = "127.0.0.1" if serve.host in ("0.0.0.0", "::") else serve.host
    simulator = sim.Simulator(
        api or f"http://{host}:{serve.port}",
        playlists,
        manager.schema.audio_features,
        integers,
        rate=rate,
        max_requests=max_requests,
        max_seconds=max_seconds,
        k=k,
        label_delay=label_delay,
        seed=seed,
        labeler_token=serve.labeler_token,
    )
    report = simulator.run()
    click.echo(json.dumps(report.summary(), indent=2))
    if problem := report.problem():
        raise SongrecError(problem)


for command in (models.ui, models.promote, models.rollback, models.summary, models.tune, scoring.batch):
    main.add_command(command)
main.add_command(stream)
main.add_command(labels)
main.add_command(synth)


if __name__ == "__main__":  # pragma: no cover
    main()
