"""Which model serves now, and swapping it without dropping a request.

The ModelStore holds the ServedModel (bundle, version, catalog view). A request reads
`store.current` once and answers from that object to the end, so a swap is the replacement of
one reference: requests in flight finish on the model they started with, the next ones get the
new one. Loading happens in a background thread (every reload_interval_seconds it asks the
source, tracking.model_source, which version should serve and loads only when that changed) or
in /admin/reload, never on the request path of /recommend.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from songrec.models.bundle import SongrecBundle
from songrec.models.catalog_view import CatalogView
from songrec.tracking.model_source import ModelRef, ModelSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    ref: ModelRef
    bundle: SongrecBundle
    view: CatalogView
    loaded_at: datetime

    @property
    def version(self) -> str:
        return self.ref.version


@dataclass(frozen=True)
class ReloadResult:
    swapped: bool
    model: ServedModel
    previous_version: str | None


class ModelStore:
    """The model that serves now, and the background refresh that swaps in a new champion."""

    def __init__(
        self,
        source: ModelSource,
        reload_interval_seconds: float,
        check: Callable[[SongrecBundle], None] | None = None,
        on_swap: Callable[[ServedModel, ServedModel | None], None] | None = None,
    ) -> None:
        self.source = source
        self.reload_interval_seconds = reload_interval_seconds
        self.check = check  # raises when the app cannot serve a bundle (e.g. other input features)
        self.on_swap = on_swap
        self.swaps = 0
        self.last_error: str | None = None  # why the last refresh failed (no internal text)
        self.load_failures = 0  # models the source named that could not be loaded
        self.wanted: ModelRef | None = None  # the model the source names now (the champion)
        self.registry_problem: str | None = None
        self._last_warning: str | None = None
        self._current: ServedModel | None = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> ServedModel | None:
        """The model to answer with; read it once per request."""
        return self._current

    def refresh(self, force: bool = False) -> ReloadResult:
        """Load the model the source names if it is not the one serving (or `force`), then swap."""
        with self._reload_lock:
            current = self._current
            ref = self.source.locate(None if current is None else current.ref)
            self.registry_problem = getattr(self.source, "registry_problem", None)
            self.wanted = ref
            if current is not None and not force and current.ref == ref:
                return ReloadResult(swapped=False, model=current, previous_version=current.version)
            started = time.perf_counter()
            try:
                bundle = self.source.load(ref)
                if self.check is not None:
                    self.check(bundle)
            except Exception as exc:
                self.load_failures += 1
                self.last_error = f"version {ref.version} cannot be loaded ({type(exc).__name__})"
                log.warning("cannot load model version %s from %s: %s", ref.version, ref.uri, exc)
                raise
            served = ServedModel(
                ref=ref, bundle=bundle, view=CatalogView(bundle), loaded_at=datetime.now(UTC)
            )
            self._current = served  # the swap: one reference replaced
            self.swaps += current is not None
            self.last_error = None
            log.info(
                "serving model %s (%s, %s, %d tracks), loaded in %.1f s",
                ref.version,
                ref.source,
                ref.uri,
                len(bundle),
                time.perf_counter() - started,
            )
            if self.on_swap is not None:
                self.on_swap(served, current)
            return ReloadResult(
                swapped=True, model=served, previous_version=None if current is None else current.version
            )

    @property
    def stale(self) -> bool:
        """True while the source names another model than the one serving (it failed to load)."""
        current = self._current
        return current is not None and self.wanted is not None and self.wanted != current.ref

    def problem(self) -> str | None:
        """What keeps the champion from serving, in words a client may read."""
        if self.registry_problem is not None:
            return self.registry_problem
        if self.stale and self.wanted is not None:
            return self.last_error or f"version {self.wanted.version} is not loaded yet"
        return None

    def start(self) -> None:
        """Load the model now (raising if there is none), then keep checking in the background."""
        if self._current is None:
            self.refresh()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="songrec-model-refresh", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.reload_interval_seconds):
            try:
                self.refresh()
            except Exception as exc:  # keep serving the current model; try again next time
                message = self.last_error or type(exc).__name__
                if message != self._last_warning:  # once per new problem, not every interval
                    log.warning("cannot refresh the model, still serving the current one: %s", message)
                    self._last_warning = message
