"""`songrec serve`: the API and the web page in one uvicorn process.

One process is enough on one machine (the recommender's scoring is numpy, which releases the
GIL); past one machine, run several behind a load balancer (docker-compose.yaml). The model is
loaded before the port opens, so a started server is a ready one.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from songrec.config.manager import ConfigurationManager

log = logging.getLogger(__name__)


def run_server(
    manager: ConfigurationManager,
    host: str | None = None,
    port: int | None = None,
    bundle: Path | None = None,
) -> None:
    """Serve until interrupted. `bundle`: serve this file instead of the registry's champion."""
    import uvicorn

    from songrec.serving.app import create_app

    config = manager.serve()
    if bundle is not None:
        config = replace(config, bundle_file=bundle.resolve())
    app = create_app(config)
    host = host or config.host
    port = config.port if port is None else port
    what = (
        f"the bundle {config.bundle_file}"
        if config.bundle_file
        else f"the {config.tracking.registered_model} champion"
    )
    # The command's output (STYLE 14): where to go, before uvicorn's own log lines.
    click.echo(f"songrec: loading {what}, then serving on http://{host}:{port} (API docs: /docs)")
    with _one_blas_thread():
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            access_log=False,  # every API request goes to the event store instead
            timeout_graceful_shutdown=10,
        )


def _one_blas_thread() -> Any:
    """Requests run in parallel threads; a BLAS thread pool per call on top of them oversubscribes
    the CPUs (with a large catalog and concurrent clients, throughput collapsed)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
