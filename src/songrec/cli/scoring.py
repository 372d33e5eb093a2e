"""`songrec batch`: playlists or tracks scored offline with the registry's champion."""

from __future__ import annotations

import json
from pathlib import Path

import click

from songrec.cli.common import load_config

TASKS = ("recommend", "genre", "popularity")


@click.command()
@click.argument("task", type=click.Choice(TASKS))
@click.option(
    "--input",
    "source",
    default=None,
    help="A .parquet, .csv or .csv.gz file, local or s3:// (recommend: playlist_id, track_id rows; "
    "default: the catalog's playlists. genre/popularity: track_id, or every feature column).",
)
@click.option(
    "--output", default=None, help="A .parquet path or s3:// URL (default: data/batch/<task>/v<N>.parquet)."
)
@click.option("--version", "version", default=None, help="A registered version (default: the champion).")
@click.option(
    "--bundle",
    "bundle_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Score with this bundle file instead of the registry.",
)
@click.option(
    "--run-id", default=None, help="The batch run id written on every row (default: from the inputs)."
)
@click.option(
    "-k", type=click.IntRange(min=1), default=None, help="Recommendations per playlist (default: batch.k)."
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=None,
    help="Rows per chunk (default: batch.chunk_rows).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes scoring recommend (default: batch.workers).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def batch(
    task: str,
    source: str | None,
    output: str | None,
    version: str | None,
    bundle_file: Path | None,
    run_id: str | None,
    k: int | None,
    chunk_rows: int | None,
    workers: int | None,
    as_json: bool,
) -> None:
    """Score a file of playlists (recommend) or tracks (genre, popularity) in chunks; write Parquet."""
    from songrec.scoring.batch import run_batch

    report = run_batch(
        load_config().batch(),
        task,
        source,
        output,
        version=version,
        bundle_file=bundle_file,
        run_id=run_id,
        k=k,
        chunk_rows=chunk_rows,
        workers=workers,
    )
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    click.echo(
        f"{report.items} {'playlists' if task == 'recommend' else 'tracks'} scored with model version "
        f"{report.model_version} (run {report.batch_run_id}) in {report.seconds:.1f} s: "
        f"{report.output_rows} rows in {report.output}"
        + (f" and table {report.table}" if report.table else "")
    )
    for reason, count in report.skipped.items():
        click.echo(f"  skipped: {count} {reason}")
