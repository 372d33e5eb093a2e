"""Long work is never silent: progress lines in a log, a heartbeat around opaque calls."""

from __future__ import annotations

import logging
import time

import pytest

from songrec.core.progress import Progress, heartbeat, tracked

log = logging.getLogger("songrec.tests.progress")


def test_a_heartbeat_logs_while_an_opaque_call_runs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=log.name), heartbeat("fitting", log, every=0.1):
        time.sleep(0.55)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "fitting ..."
    assert sum("fitting: still running" in line for line in lines) >= 4
    assert lines[-1].startswith("fitting: done in")


def test_progress_logs_a_line_at_least_every_interval_in_a_log(caplog: pytest.LogCaptureFixture) -> None:
    """Not on a terminal (as under DVC or Airflow): a line per `every` seconds, with the count."""
    now = [0.0]
    with (
        caplog.at_level(logging.INFO, logger=log.name),
        Progress(100, "trees", log, unit="trees", every=10.0, clock=lambda: now[0]) as progress,
    ):
        for _ in range(100):
            now[0] += 1.0  # one tree a second
            progress.update(loss=0.5)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "trees: started (100 trees)"
    periodic = lines[1:-1]
    assert len(periodic) == 10 and periodic[0] == "trees: 10/100 trees, loss 0.5"
    assert lines[-1] == "trees: 100/100 trees, loss 0.5, done in 100.0 s"


def test_tracked_counts_what_is_taken(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=log.name):
        assert list(tracked(range(5), 5, "items", log)) == [0, 1, 2, 3, 4]
    assert caplog.records[-1].getMessage().startswith("items: 5/5 it, done in")
