"""`songrec stream`: score the requests of a Redis Stream with the model the API serves."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path

import click

from songrec.cli.common import load_config


@click.command()
@click.option(
    "--consumer",
    default=None,
    help="This scorer's name in the consumer group (default: HOSTNAME-PID). A scorer restarted "
    "under the same name answers first what it had read and not written.",
)
@click.option(
    "--max-entries",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many entries (tests, benchmarks); default: run until SIGTERM or Ctrl-C.",
)
@click.option(
    "--bundle",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Score with this bundle file instead of the registry's champion (or set SONGREC_BUNDLE).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    help="Port of the Prometheus metrics (default: stream.metrics_port; 0: none).",
)
def stream(
    consumer: str | None, max_entries: int | None, bundle: Path | None, metrics_port: int | None
) -> None:
    """Score the entries of the Redis Stream `stream.requests` with the champion, as a member of
    the consumer group `stream.group`; results and dead letters go to their own streams.

    SIGTERM or Ctrl-C stops it after the batch in hand. Run several (docker compose up --scale
    songrec-stream=3): the group shares the entries among them.
    """
    from songrec.serving.stream_runner import run_stream

    config = load_config().stream()
    if bundle is not None:
        config = replace(config, serve=replace(config.serve, bundle_file=bundle.resolve()))
    if metrics_port is not None:
        config = replace(config, metrics_port=metrics_port)
    run_stream(config, consumer or f"{socket.gethostname()}-{os.getpid()}", max_entries)
