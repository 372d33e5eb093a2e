"""`songrec synth`: synthetic playlist data with the shape of real playlist data, in the source
format, for running the pipeline at scale (contract.synthetic, docs/pipeline.md)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from songrec.cli.common import load_config

if TYPE_CHECKING:  # the command starts fast: pyarrow loads when it runs
    import pyarrow as pa

    from songrec.core.progress import Progress

log = logging.getLogger(__name__)


@click.command()
@click.option("--playlists", type=click.IntRange(min=1), required=True, help="How many playlists.")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same bytes.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The .csv.gz or .parquet to write (default: data/synthetic/playlists-N-seed-S.csv.gz).",
)
@click.option(
    "--templates",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Source-format CSV whose tracks are copied (default: the shipped data set).",
)
def synth(playlists: int, seed: int, out: Path | None, templates: Path | None) -> None:
    """Write N synthetic playlists (one row per track and playlist, config/schema.yaml's columns).

    Point `ingest.source` in config/config.yaml at the file (and `ingest.sha256` at the printed
    sha256, or null) to run the pipeline on it.
    """
    import pandas as pd

    from songrec.contract.synthetic import build_catalog, templates_from
    from songrec.contract.synthetic_playlists import synthetic_tables
    from songrec.core.io import write_csv_gz, write_parquet_stream
    from songrec.core.progress import Progress

    manager = load_config()
    schema = manager.schema
    out = out or manager.root / "data" / "synthetic" / f"playlists-{playlists}-seed-{seed}.csv.gz"
    shipped = pd.read_csv(templates or manager.root / "data" / "source" / "spotify_songs.csv.gz")
    catalog = build_catalog(templates_from(shipped, schema), playlists, schema, seed)
    log.info("synthetic catalog: %d tracks by %d artists", catalog.n_tracks, len(catalog.artist_names))
    counts = {"rows": 0}
    with Progress(playlists, "synth", log, unit="playlists") as progress:
        write = write_parquet_stream if out.suffix == ".parquet" else write_csv_gz
        sha256 = write(_counted(synthetic_tables(catalog, playlists, schema), progress, counts), out)
    click.echo(
        f"wrote {manager.relative(out)}: {playlists} playlists, {counts['rows']} rows, sha256 {sha256}"
    )
    click.echo("to ingest it: set ingest.source to that path and ingest.sha256 to the sha256 (or null)")


def _counted(tables: Iterator[pa.Table], progress: Progress, counts: dict[str, int]) -> Iterator[pa.Table]:
    """`tables` (chunks of CHUNK_PLAYLISTS playlists), counted into the progress and `counts`."""
    from songrec.contract.synthetic_playlists import CHUNK_PLAYLISTS

    for table in tables:
        yield table
        counts["rows"] += table.num_rows
        progress.update(min(CHUNK_PLAYLISTS, (progress.total or 0) - progress.done), rows=counts["rows"])
