"""`songrec serve`: the API and the web page in one uvicorn process.

One process is enough on one machine (the recommender's scoring is numpy, which releases the
GIL); past one machine, run several behind a load balancer (docker-compose.yaml). The model is
loaded before the port opens, so a started server is a ready one.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from songrec.config.manager import ConfigurationManager
from songrec.config.stage_configs import ServeConfig

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
    _room_for_connections(config.max_connections)
    with _one_blas_thread():
        uvicorn.run(app, host=host, port=port, log_level="info", **uvicorn_options(config))


def uvicorn_options(config: ServeConfig) -> dict[str, Any]:
    """How uvicorn serves the app: the client limits of the `serve` section, no access log."""
    return {
        "http": header_deadline_protocol(config.header_timeout_seconds),
        "limit_concurrency": config.max_connections,  # beyond: 503 at once
        "access_log": False,  # every API request goes to the event store instead
        "timeout_graceful_shutdown": 10,
    }


def header_deadline_protocol(seconds: float) -> Any:
    """uvicorn's HTTP protocol, closing a connection whose request headers take over `seconds`.

    uvicorn times out idle keep-alive connections but not a request that is slow to arrive: a
    client sending its headers a byte at a time held a connection (and a file descriptor) for
    as long as it liked. The body's deadline is the middleware's (it answers 408).
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        _headers_due: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._expect_headers()

        def on_message_begin(self) -> None:  # the next request on a kept-alive connection
            super().on_message_begin()
            self._expect_headers()

        def on_headers_complete(self) -> None:
            self._headers_arrived()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_arrived()
            super().connection_lost(exc)

        def _expect_headers(self) -> None:
            if self._headers_due is None:
                self._headers_due = self.loop.call_later(seconds, self._headers_late)

        def _headers_arrived(self) -> None:
            if self._headers_due is not None:
                self._headers_due.cancel()
                self._headers_due = None

        def _headers_late(self) -> None:
            self._headers_due = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadlineProtocol


def _room_for_connections(connections: int) -> None:
    """Raise the open-file limit toward what serve.max_connections needs (each is a descriptor),
    as far as the hard limit allows; warn when it still falls short."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256  # the model, the event store, logs, the registry's files
    if soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = raised
    if soft < wanted:
        log.warning(
            "open files limited to %d: fewer than serve.max_connections (%d) connections fit",
            soft,
            connections,
        )


def _one_blas_thread() -> Any:
    """Requests run in parallel threads; a BLAS thread pool per call on top of them oversubscribes
    the CPUs (with a large catalog and concurrent clients, throughput collapsed)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
