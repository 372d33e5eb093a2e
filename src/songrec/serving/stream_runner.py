"""`songrec stream`'s wiring: the Redis client, the model store that follows the champion as
the API's does, and the run loop with its signal handling (the scorer itself: stream.py)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from threadpoolctl import threadpool_limits

from songrec.config.stage_configs import ServeConfig, StreamConfig
from songrec.core.errors import SongrecError
from songrec.models.bundle import SongrecBundle
from songrec.serving.app import _servable
from songrec.serving.catalog_predictions import catalog_predictions
from songrec.serving.model_store import ModelStore
from songrec.serving.schemas import RequestModels, build_request_models
from songrec.serving.stream import StreamScorer, connect
from songrec.tracking.model_source import ChampionSource, FileSource, ModelSource
from songrec.tracking.setup import redact

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the command


def model_source(serve: ServeConfig) -> ModelSource:
    """What the API serves (app.create_app): the bundle file if set, else the registry's champion."""
    if serve.bundle_file is not None:
        return FileSource(serve.bundle_file)
    return ChampionSource(serve.tracking, serve.bundle)


def model_store(serve: ServeConfig, source: ModelSource, models: RequestModels) -> ModelStore:
    """The API's model store; a bundle is checked as the API checks it, and its catalog
    predictions are computed, before it is swapped in (in the refresh thread, not in a batch)."""
    servable = _servable(models)

    def prepare(bundle: SongrecBundle) -> None:
        servable(bundle)
        catalog_predictions(bundle)

    return ModelStore(source, serve.reload_interval_seconds, check=prepare)


def run_stream(
    config: StreamConfig,
    consumer: str,
    max_entries: int | None = None,
    source: ModelSource | None = None,
) -> StreamScorer:
    """Score until SIGTERM/SIGINT (or `max_entries`); returns the scorer, with its counts."""
    client = connect(config)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise SongrecError(
            f"cannot reach Redis at {redact(config.url)} ({exc}): start it, or set SONGREC_STREAM_URL"
        ) from exc
    # One thread per scorer for BLAS and OpenMP: scorers scale as processes (--scale), and on the
    # benchmark's 2 cores, shared with Redis, one thread scored 10 to 15% more than two.
    limits = threadpool_limits(limits=1)
    models = build_request_models(config.serve.schema, config.serve)
    store = model_store(config.serve, source or model_source(config.serve), models)
    try:
        store.start()  # loads the model, raising if there is none
    except BaseException:
        limits.restore_original_limits()
        client.close()
        raise
    scorer = StreamScorer(config, store, consumer, client=client, models=models)
    try:
        if config.metrics_port:
            scorer.metrics.serve(config.metrics_port)
        current = store.current
        log.info(
            "songrec stream: consumer %s of group %s reads %s on %s (results: %s, dead letters: %s); "
            "model %s; metrics %s",
            consumer,
            config.group,
            config.requests,
            redact(config.url),
            config.results,
            config.dead_letter,
            None if current is None else current.version,
            f"on :{config.metrics_port}/metrics" if config.metrics_port else "off",
        )
        with _stop_on_signals(scorer):
            scorer.run(max_entries)
        log.info(
            "songrec stream: stopped after %d entries (%d results, %d dead-lettered, %d skipped)",
            scorer.handled,
            scorer.results,
            scorer.dead_letters,
            scorer.skipped,
        )
    finally:
        store.stop()
        scorer.metrics.close()
        client.close()
        limits.restore_original_limits()
    return scorer


@contextmanager
def _stop_on_signals(scorer: StreamScorer) -> Iterator[None]:
    """SIGTERM and SIGINT stop the scorer after the batch in hand; a second one stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    defaults: dict[signal.Signals, Any] = {
        signal.SIGTERM: signal.SIG_DFL,
        signal.SIGINT: signal.default_int_handler,
    }

    def graceful(signum: int, _frame: Any) -> None:
        log.info("%s: finishing the batch in hand, then stopping", signal.Signals(signum).name)
        scorer.stop()
        for number, handler in defaults.items():
            signal.signal(number, handler)

    previous = {number: signal.signal(number, graceful) for number in defaults}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
