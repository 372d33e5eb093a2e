"""Progress of long work, for a person at a terminal and for a log (DVC's output, Airflow's task
log): a bar on a terminal, and everywhere a log line at least every `EVERY_SECONDS`, so that no
long step is silent.

- `Progress` counts done items out of a total (trees, playlists, requests);
- `heartbeat` covers one opaque call (a scikit-learn fit, an MLflow upload) with "still ..."
  lines from a background thread while it runs.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tqdm import tqdm

# A line every 9 s: with steps of up to a second (a tree, a batch), no gap exceeds 10 s.
EVERY_SECONDS = 9.0
T = TypeVar("T")


class Progress:
    """`done` of `total` items: a bar on a terminal, else a log line every `every` seconds."""

    def __init__(
        self,
        total: int | None,
        what: str,
        log: logging.Logger,
        unit: str = "it",
        every: float = EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.what, self.log, self.unit, self.every = total, what, log, unit, every
        self.clock = clock
        self.done = 0
        self.started = self.last_line = clock()
        self.notes: dict[str, Any] = {}
        self.terminal = sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=what, unit=unit, disable=not self.terminal, leave=False)
        self.log.info("%s: started%s", what, f" ({total} {unit})" if total is not None else "")

    def update(self, n: int = 1, **notes: Any) -> None:
        """`n` more items done; `notes` (counts, say) are shown beside the count."""
        self.done += n
        self.notes.update(notes)
        self.bar.update(n)
        if notes:
            self.bar.set_postfix(notes, refresh=False)
        if not self.terminal and self.clock() - self.last_line >= self.every:
            self.log.info("%s: %s", self.what, self._status())
            self.last_line = self.clock()

    def close(self) -> None:
        self.bar.close()
        self.log.info("%s: %s, done in %.1f s", self.what, self._status(), self.clock() - self.started)

    def _status(self) -> str:
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        notes = "".join(f", {key} {value}" for key, value in self.notes.items())
        return f"{count} {self.unit}{notes}"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tracked(
    items: Iterable[T], total: int | None, what: str, log: logging.Logger, unit: str = "it"
) -> Iterator[T]:
    """`items`, counted by a Progress as they are taken."""
    with Progress(total, what, log, unit) as progress:
        for item in items:
            yield item
            progress.update()


@contextmanager
def heartbeat(what: str, log: logging.Logger, every: float = EVERY_SECONDS) -> Iterator[None]:
    """Log `what` when it starts, "still ..." every `every` seconds while it runs, and its time."""
    started = time.monotonic()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            log.info("%s: still running (%.0f s)", what, time.monotonic() - started)

    log.info("%s ...", what)
    thread = threading.Thread(target=beat, name="songrec-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        log.info("%s: done in %.1f s", what, time.monotonic() - started)
