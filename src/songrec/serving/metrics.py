"""Prometheus metrics of one app: requests, latencies, the model serving, the event store.

Each app has its own CollectorRegistry, so several apps (tests) never share counters. The
model and event-store figures are read from their owners when /metrics is scraped, never
counted twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from songrec.serving.model_store import ModelStore
from songrec.store.request_log import EventStore

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    def __init__(self, store: ModelStore, events: EventStore) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "songrec_requests",
            "HTTP requests answered, by route, method and status.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "songrec_request_duration_seconds",
            "Time from the request's arrival to the end of its answer, by route.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "songrec_rate_limited",
            "Requests refused with 429: the client was over its rate for the route (serve.rate_limits).",
            ["endpoint"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(store, events))
        # process_resident_memory_bytes, process_cpu_seconds_total, open file descriptors.
        ProcessCollector(registry=self.registry)

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def resident_mib() -> float | None:
    """This process's resident memory now (Linux: /proc/self/statm), in MiB."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


class _StateCollector(Collector):
    def __init__(self, store: ModelStore, events: EventStore) -> None:
        self.store = store
        self.events = events

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        info = GaugeMetricFamily(
            "songrec_model_info", "The model serving (value 1).", labels=["version", "source", "recommender"]
        )
        current = self.store.current
        if current is not None:
            info.add_metric([current.version, current.ref.source, current.bundle.recommender_name], 1)
            yield GaugeMetricFamily(
                "songrec_model_catalog_tracks",
                "Tracks in the serving model's catalog.",
                value=len(current.bundle),
            )
            yield GaugeMetricFamily(
                "songrec_model_loaded_timestamp_seconds",
                "When the serving model was loaded (Unix time).",
                value=current.loaded_at.timestamp(),
            )
        yield info
        yield CounterMetricFamily(
            "songrec_model_swaps", "Models swapped in after the first.", value=self.store.swaps
        )
        yield CounterMetricFamily(
            "songrec_champion_load_failures",
            "Models the registry named as champion that could not be loaded.",
            value=self.store.load_failures,
        )
        yield GaugeMetricFamily(
            "songrec_model_stale",
            "1 while the registry's champion is not the version serving (it failed to load), else 0.",
            value=int(self.store.stale),
        )
        yield GaugeMetricFamily(
            "songrec_registry_up",
            "0 when the last look at the registry failed, else 1.",
            value=int(self.store.registry_problem is None),
        )
        stats = self.events.stats
        yield CounterMetricFamily(
            "songrec_events_logged", "Events written to the event store.", value=stats.logged
        )
        dropped = CounterMetricFamily(
            "songrec_events_dropped", "Events that could not be logged (the buffer was full)."
        )
        dropped.add_metric([], stats.dropped)
        yield dropped
        by_reason = CounterMetricFamily(
            "songrec_events_dropped_by_reason",
            "Events that could not be logged, by reason.",
            labels=["reason"],
        )
        by_reason.add_metric(["queue_full"], stats.dropped_queue_full)
        by_reason.add_metric(["shutdown"], stats.dropped_shutdown)
        yield by_reason
        yield CounterMetricFamily(
            "songrec_event_writer_restarts",
            "Event writer processes that died and were started again.",
            value=stats.writer_restarts,
        )
        yield CounterMetricFamily(
            "songrec_events_replayed",
            "Events replayed from the spool of an API process that died before they were written.",
            value=stats.replayed,
        )
        yield GaugeMetricFamily(
            "songrec_event_queue_depth", "Events waiting to be written.", value=self.events.queue_depth
        )
        yield GaugeMetricFamily(
            "songrec_event_hold",
            "1 while the request log holds its writes for a burst (SONGREC_EVENT_HOLD_SECONDS), else 0.",
            value=int(self.events.holding),
        )
        yield GaugeMetricFamily(
            "songrec_event_logging_enabled",
            "1 unless SONGREC_EVENT_LOGGING=off.",
            value=int(self.events.enabled),
        )
        yield GaugeMetricFamily(
            "songrec_event_store_up",
            "1 if the event writer runs and its last write succeeded (or none failed yet), else 0.",
            value=1 if self.events.available else 0,
        )
