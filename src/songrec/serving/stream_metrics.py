"""Prometheus metrics of one stream scorer: entries by task and outcome, dead letters, batch
durations, the group's backlog and the model serving.

Each scorer has its own CollectorRegistry (tests run several in one process). The backlog
(entries pending and the group's lag) and the model are read from their owners when the
metrics are scraped, so they are never stale and never counted twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from songrec.serving.model_store import ModelStore

log = logging.getLogger(__name__)

BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class GroupState:
    """The consumer group's backlog: read and not acknowledged, and not read yet."""

    pending: int
    lag: int | None  # None when Redis cannot tell (after entries were deleted from the middle)


class StreamMetrics:
    def __init__(self, store: ModelStore, state: Callable[[], GroupState]) -> None:
        self.registry = CollectorRegistry()
        self.entries = Counter(
            "songrec_stream_entries",
            "Input entries handled, by task and outcome: scored (a result), dead_letter, or "
            "skipped (another scorer claimed the entry first and answers it).",
            ["task", "outcome"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "songrec_stream_dead_lettered",
            "Entries written to the dead-letter stream, by kind of reason.",
            ["reason"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "songrec_stream_batch_duration_seconds",
            "Time to check, score and write one micro-batch.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.claimed = Counter(
            "songrec_stream_claimed_entries",
            "Entries taken over from scorers idle longer than stream.claim_idle_ms.",
            registry=self.registry,
        )
        self.registry.register(_StateCollector(store, state))
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        """Expose /metrics on `port` (a thread of prometheus_client's)."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _StateCollector(Collector):
    def __init__(self, store: ModelStore, state: Callable[[], GroupState]) -> None:
        self.store = store
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info = GaugeMetricFamily(
            "songrec_model_info", "The model serving (value 1).", labels=["version", "source", "recommender"]
        )
        current = self.store.current
        if current is not None:
            info.add_metric([current.version, current.ref.source, current.bundle.recommender_name], 1)
        yield info
        try:
            state = self.state()
        except Exception as exc:  # Redis down: say so, and show no stale backlog
            log.debug("cannot read the consumer group's state: %s", exc)
            yield GaugeMetricFamily("songrec_stream_redis_up", "1 when Redis answers.", value=0)
            return
        yield GaugeMetricFamily("songrec_stream_redis_up", "1 when Redis answers.", value=1)
        yield GaugeMetricFamily(
            "songrec_stream_pending",
            "Entries the group has read and not acknowledged (XPENDING), all scorers together.",
            value=state.pending,
        )
        if state.lag is not None:
            yield GaugeMetricFamily(
                "songrec_stream_lag",
                "Entries of the input stream the group has not read yet (XINFO GROUPS lag).",
                value=state.lag,
            )
