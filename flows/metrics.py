"""`/metrics`: the syncs' figures in Prometheus' text format.

Syncs run in flow processes, not in the API's, so in-process counters would only count
what one API process saw. The figures are read from the run records instead, at scrape
time, with one aggregation (`RunRepository.figures`): every API process answers alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ledger.store import Store
from ledger.sync_run import RunState

DURATION_BUCKETS_SECONDS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)


@dataclass
class _Durations:
    buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS_SECONDS))
    runs: int = 0
    ms: int = 0


class SyncCollector:
    """A custom collector: each scrape reads the figures afresh."""

    def __init__(self, store: Store):
        self.store = store

    def describe(self) -> list[Metric]:
        return []  # nothing is read at registration (the database may not be up yet)

    def collect(self) -> Iterator[Metric]:
        rows = self.store.runs.figures(tuple(seconds * 1000 for seconds in DURATION_BUCKETS_SECONDS))
        started = CounterMetricFamily("ledger_sync_syncs_started", "Syncs started, by mode", labels=["mode"])
        finished = CounterMetricFamily("ledger_sync_syncs_finished", "Syncs finished, by state and mode",
                                       labels=["state", "mode"])
        active = GaugeMetricFamily("ledger_sync_active_syncs", "Syncs queued, running or cancelling now",
                                   labels=["state"])
        duration = HistogramMetricFamily("ledger_sync_sync_duration_seconds",
                                         "Time finished syncs ran (every attempt, not the gaps between)",
                                         labels=["mode"])
        documents = CounterMetricFamily("ledger_sync_documents_processed", "Source documents read", labels=["mode"])
        entries = CounterMetricFamily("ledger_sync_entries_posted", "Ledger entries posted, reversals included",
                                      labels=["mode"])
        rejected = CounterMetricFamily("ledger_sync_documents_rejected", "Source documents rejected",
                                       labels=["mode"])
        per_mode: dict[str, dict[str, int]] = {}
        timed: dict[str, _Durations] = {}
        per_active = {state.value: 0 for state in RunState if not state.finished}
        for row in rows:
            mode, state = row["mode"], RunState(row["state"])
            sums = per_mode.setdefault(mode, {"runs": 0, "documents": 0, "entries": 0, "rejected": 0})
            for name in sums:
                sums[name] += row[name]
            if not state.finished:
                per_active[state.value] += row["runs"]
                continue
            finished.add_metric([state.value, mode], row["runs"])
            histogram = timed.setdefault(mode, _Durations())
            histogram.buckets = [a + b for a, b in zip(histogram.buckets, row["buckets"], strict=True)]
            histogram.runs += row["runs"]
            histogram.ms += row["durationMs"]
        for mode, sums in sorted(per_mode.items()):
            started.add_metric([mode], sums["runs"])
            documents.add_metric([mode], sums["documents"])
            entries.add_metric([mode], sums["entries"])
            rejected.add_metric([mode], sums["rejected"])
        for mode, histogram in sorted(timed.items()):
            buckets = [(str(float(seconds)), count) for seconds, count in
                       zip(DURATION_BUCKETS_SECONDS, histogram.buckets, strict=True)]
            duration.add_metric([mode], buckets=[*buckets, ("+Inf", histogram.runs)], sum_value=histogram.ms / 1000)
        for waiting, count in per_active.items():
            active.add_metric([waiting], count)
        yield from (started, finished, active, duration, documents, entries, rejected)


def bridge_metrics(connected: bool, reconnects: int, lag_seconds: float | None) -> list[Metric]:
    """The API process's own events bridge (Prefect's event stream → the vendors' rooms)."""
    up = GaugeMetricFamily("ledger_sync_events_bridge_connected", "1 while the bridge follows Prefect's events",
                           value=int(connected))
    again = CounterMetricFamily("ledger_sync_events_bridge_reconnects", "Times the bridge lost the stream and "
                                "connected again", value=reconnects)
    lag = GaugeMetricFamily("ledger_sync_events_bridge_lag_seconds", "From when the last forwarded event happened "
                            "to when the bridge sent it on", value=lag_seconds or 0.0)
    return [up, again, lag]


class _Fixed:
    def __init__(self, metrics: list[Metric]):
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


def exposition(store: Store, process_metrics: list[Metric]) -> bytes:
    """The text a scrape gets: the syncs' figures and this process's own (`process_metrics`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SyncCollector(store))
    registry.register(_Fixed(process_metrics))
    return generate_latest(registry)
