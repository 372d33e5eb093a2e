"""The commands about models: the MLflow UI, releases (promote, rollback), the last run's
summary, and tuning."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from songrec.cli.common import load_config
from songrec.core.errors import SongrecError


@click.command()
@click.option("--port", default=5000, show_default=True, help="Port of the MLflow UI.")
def ui(port: int) -> None:
    """The MLflow UI on the configured store (the local one, or the server's address)."""
    import subprocess

    from songrec.tracking.setup import redact

    tracking = load_config().tracking()
    if tracking.backend != "local":
        click.echo(f"runs and models are on {redact(tracking.uri)}: open it in a browser")
        return
    if not Path(tracking.uri.removeprefix("sqlite:///")).exists():
        raise SongrecError(f"no local MLflow store yet ({tracking.uri}): run `make run` first")
    click.echo(f"MLflow UI on http://127.0.0.1:{port} (Ctrl-C stops)")
    command = [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", tracking.uri]
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run([*command, "--host", "127.0.0.1", "--port", str(port)], check=False)


@click.command()
@click.option("--version", "version", default=None, help="The version to release (default: the challenger).")
@click.option("--force", is_flag=True, help="Release whatever the gate says (needs --reason; recorded).")
@click.option("--reason", default=None, help="Why the gate is overridden (with --force).")
def promote(version: str | None, force: bool, reason: str | None) -> None:
    """Release a candidate: move `champion` to it if the gate passes on the current evaluation data.

    A pipeline run (make run, dvc repro, dvc exp run) only registers candidates; this command,
    songrec_retraining and songrec_training with `release` are how a version starts serving.
    """
    from songrec.tracking.promotion import release_in_workspace

    if force and not (reason or "").strip():
        raise click.UsageError("--force needs --reason: say why the gate is overridden")
    decision = release_in_workspace(load_config(), version, reason.strip() if force and reason else None)
    state = "released: now the champion" if decision["promoted"] else "not released"
    click.echo(f"{decision['model']} v{decision['challenger_version']} {state} ({decision['reason']})")
    for verdict in decision["gate"]["metrics"]:
        click.echo(f"  {verdict['metric']:<16} {verdict['verdict']}")
    if not decision["promoted"]:
        sys.exit(1)


@click.command()
@click.option(
    "--to", "to_version", default=None, help="The version to make champion (default: the one before)."
)
def rollback(to_version: str | None) -> None:
    """Move the champion alias back to the previous champion; the API follows within its reload interval."""
    from songrec.tracking.history import rollback as roll_back

    click.echo(json.dumps(roll_back(load_config(), to_version)))


@click.command()
def summary() -> None:
    """Print the key metrics of the last pipeline run and where to look next."""
    from songrec.cli.summary import pipeline_summary

    click.echo(pipeline_summary(load_config()))


@click.command()
@click.argument("model", type=click.Choice(["genre", "popularity", "recommender"]))
@click.option("--trials", type=click.IntRange(min=1), default=None, help="Trials to run (default 30).")
@click.option(
    "--minutes", type=click.FloatRange(min=0, min_open=True), default=None, help="Start no trial after."
)
@click.option(
    "--seed", type=int, default=None, help="Seed of the sampler and the split (default: params.yaml)."
)
@click.option(
    "--apply",
    "apply_patch",
    is_flag=True,
    help="Write reports/tuning/MODEL.yaml into params.yaml (after tuning, with --trials/--minutes).",
)
def tune(model: str, trials: int | None, minutes: float | None, seed: int | None, apply_patch: bool) -> None:
    """Search MODEL's params.yaml hyperparameters with Optuna on a validation split of the training
    data; write the best as a patch (reports/tuning/MODEL.yaml) and compare it with the current.

    With --apply alone, write the last patch into params.yaml instead of searching.
    """
    from songrec.orchestration import tuning_run

    manager = load_config()
    if not apply_patch or trials is not None or minutes is not None:
        report = tuning_run.run_tuning(manager, model, trials=trials, minutes=minutes, seed=seed)
        val = report["validation"]
        click.echo(
            f"{model}: {report['trials']} trials ({report['pruned']} pruned) in {report['seconds']:.0f} s;"
            f" validation {report['metric']} {val['current']:.4f} (current params) ->"
            f" {val['best']:.4f} (trial {report['best_trial']}), gain {val['gain']:+.4f}"
        )
        current = report["current_params"]
        changed = {key: value for key, value in report["best_params"].items() if value != current[key]}
        for key, value in changed.items():
            click.echo(f"  {key}: {current[key]} -> {value}")
        if not changed:
            click.echo("  the current params were the best found: nothing to change")
        click.echo(f"patch: {report['patch']}; MLflow run {report['mlflow_run_id']}")
        if report["test_before"] is not None:
            click.echo(f"test {report['metric']} of the last pipeline run: {report['test_before']:.4f}")
        if not apply_patch:
            click.echo(f"try it: {report['dvc_command']}\n   or: songrec tune {model} --apply && dvc repro")
            return
    applied = tuning_run.apply_tuned(load_config(), model)
    for key, (old, new) in applied["changes"].items():
        click.echo(f"params.yaml {key}: {old} -> {new}")
    if applied["params_moved_since_tuning"]:
        click.echo(f"note: {', '.join(applied['params_moved_since_tuning'])} changed since the tuning run")
    before, now = applied["test_before"], applied["test_now"]
    if applied["changes"]:
        click.echo(f"run the pipeline (dvc repro), then `songrec tune {model} --apply` again: the test gain")
    elif now is not None and before is not None:
        click.echo(f"test {model}: {before:.4f} before tuning -> {now:.4f} now ({now - before:+.4f})")
    else:
        click.echo("params.yaml already holds the patch; run the pipeline to measure it on test")
