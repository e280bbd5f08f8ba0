"""The daemon's Prometheus metrics (prometheus_client), on a registry of its own.

Two sources. The events of every run the daemon drives (:meth:`Metrics.observe`):
jobs by kind and state, log lines and how late they arrive, and how late a
status change is seen (detection lag, from SageMaker's LastModifiedTime). And
the engine's counters, read at each scrape by a collector: AWS calls,
throttles, retries and faults by operation, and the time spent waiting for a
rate budget, by API family.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from smrun.events import Event, Finished, LogLine, StatusChanged, Submitted

LAG_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class Metrics:
    """``metrics.observe(run_id, event)`` for every event; ``exposition()`` for /metrics."""

    def __init__(self, engine_stats: Callable[[], Any] | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Gauge("smrun_jobs", "Jobs by kind and state (running, or the outcome)",
                          ["kind", "state"], registry=r)
        self.log_lines = Counter("smrun_log_lines", "Log lines read from CloudWatch",
                                 ["kind"], registry=r)
        self.log_latency = Histogram(
            "smrun_log_latency_seconds",
            "From a log line's timestamp to its publication by the daemon",
            buckets=LAG_BUCKETS, registry=r)
        self.detection_lag = Histogram(
            "smrun_detection_lag_seconds",
            "From SageMaker's LastModifiedTime to the status change seen by the daemon",
            buckets=LAG_BUCKETS, registry=r)
        self.runs = Gauge("smrun_runs_held", "Runs this daemon drives", registry=r)
        self.listening = Gauge(
            "smrun_store_listening",
            "1 while the store tells this daemon of other daemons' writes (PostgreSQL "
            "LISTEN); 0 with SQLite, or while the listening connection is down",
            registry=r)
        self.sse_clients = Gauge("smrun_sse_clients", "Open server-sent event streams",
                                 registry=r)
        self.submissions = Counter("smrun_submissions", "Runs submitted, by source and result",
                                   ["source", "result"], registry=r)
        self._states: dict[tuple[str, str], tuple[str, str]] = {}  # (run, job) -> (kind, state)
        self._kinds: dict[tuple[str, str], str] = {}
        if engine_stats is not None:
            r.register(_EngineCollector(engine_stats))

    def observe(self, run_id: str, event: Event) -> None:
        key = (run_id, event.job)
        if isinstance(event, LogLine):
            self.log_lines.labels(self._kinds.get(key, "")).inc()
            self.log_latency.observe(max(0.0, event.time - event.timestamp / 1000))
        elif isinstance(event, Submitted):
            self._kinds[key] = event.kind
            self._set(key, event.kind, "running")
        elif isinstance(event, StatusChanged):
            if event.changed is not None:
                self.detection_lag.observe(max(0.0, event.time - event.changed))
        elif isinstance(event, Finished):
            self._set(key, event.result.kind, event.result.outcome.value)
            self._kinds.pop(key, None)

    def forget(self, run_id: str) -> None:
        """A run no longer driven here: its jobs leave the gauges."""
        for key in [k for k in self._states if k[0] == run_id]:
            kind, state = self._states.pop(key)
            self.jobs.labels(kind, state).dec()

    def _set(self, key: tuple[str, str], kind: str, state: str) -> None:
        old = self._states.get(key)
        if old is not None:
            self.jobs.labels(*old).dec()
        self._states[key] = (kind, state)
        self.jobs.labels(kind, state).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _EngineCollector(Collector):
    """The engine's AWS call counters and budget waits, read at scrape time."""

    def __init__(self, stats: Callable[[], Any]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        stats = self._stats()
        if stats is None:
            return
        calls, budgets = stats
        for name, counter, doc in (
            ("smrun_aws_calls", calls.calls, "AWS calls made, by operation"),
            ("smrun_aws_throttles", calls.throttles, "AWS calls throttled, by operation"),
            ("smrun_aws_retries", calls.retries, "AWS calls retried, by operation"),
            ("smrun_aws_faults", calls.faults, "AWS calls that met a fault, by operation"),
        ):
            family = CounterMetricFamily(name, doc, labels=["operation"])
            for operation, count in sorted(counter.items()):
                family.add_metric([operation], count)
            yield family
        waited = CounterMetricFamily("smrun_budget_wait_seconds",
                                     "Time calls waited for a rate budget, by API family",
                                     labels=["family"])
        waiting = GaugeMetricFamily("smrun_budget_waiting",
                                    "Calls waiting for a rate budget now, by API family",
                                    labels=["family"])
        for family_name, family_stats in budgets.items():
            waited.add_metric([family_name], family_stats.wait_seconds)
            waiting.add_metric([family_name], family_stats.waiting)
        yield waited
        yield waiting
