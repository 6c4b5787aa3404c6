"""Prometheus metrics of one hub process.

Each hub owns its own ``CollectorRegistry`` (not the global one) so several hubs
can run in one test process. Counters and the render histogram are fed by the
sync loop and the webhook; gauges that describe state (connected spokes, clusters
by phase, last commit age) are read at scrape time from callbacks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "HubMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HubMetrics:
    """The hub's metric families, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.connected_spokes = Gauge(
            "convoy_hub_connected_spokes", "Open Watch streams on this hub process.", registry=self.registry)
        self.clusters_by_phase = Gauge(
            "convoy_hub_clusters", "Registered clusters by the phase they last reported.", ["phase"],
            registry=self.registry)
        self.render_seconds = Histogram(
            "convoy_hub_render_duration_seconds", "Time to render the fleet for one commit.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=self.registry)
        self.last_commit_age = Gauge(
            "convoy_hub_last_commit_age_seconds",
            "Seconds since the last deployed commit was authored (absent before the first sync).",
            registry=self.registry)
        self.webhooks = Counter(
            "convoy_hub_webhooks", "Webhook requests by outcome.", ["outcome"], registry=self.registry)
        self.fetches = Counter(
            "convoy_hub_fetches", "Fetches of the fleet repository by outcome.", ["outcome"],
            registry=self.registry)
        self.syncs = Counter(
            "convoy_hub_syncs", "Sync runs by outcome.", ["outcome"], registry=self.registry)
        self.leader = Gauge(
            "convoy_hub_leader", "1 on the replica that runs the sync loop and rollouts (holds the leader lease).",
            registry=self.registry)
        self.oci_push_lag = Gauge(
            "convoy_hub_oci_push_lag_seconds",
            "Age of the oldest desired bundle not yet pushed to the --oci-push registry (0: all pushed).",
            registry=self.registry)
        self.oci_pushes = Counter(
            "convoy_hub_oci_pushes", "Bundle artifacts pushed to the --oci-push registry by outcome.", ["outcome"],
            registry=self.registry)
        self.oci_blobs = Counter(
            "convoy_hub_oci_blobs", "Blobs of pushed artifacts: sent, or already in the registry (skipped).",
            ["outcome"], registry=self.registry)
        for outcome in ("pushed", "failed"):  # exposed at 0 from the start, so rates work from the first scrape
            self.oci_pushes.labels(outcome=outcome)
        for outcome in ("sent", "skipped"):
            self.oci_blobs.labels(outcome=outcome)
        self._last_commit_time: float | None = None
        self.last_commit_age.set_function(self._age)

    def watch_streams(self, count: Callable[[], int]) -> None:
        """Read the connected-spokes gauge from ``count`` at scrape time."""
        self.connected_spokes.set_function(lambda: float(count()))

    def commit_deployed(self, authored_at: float) -> None:
        self._last_commit_time = authored_at

    def _age(self) -> float:
        if self._last_commit_time is None:
            return float("nan")
        return max(0.0, time.time() - self._last_commit_time)

    def set_phases(self, counts: Mapping[str, int]) -> None:
        """Replace the clusters-by-phase gauge with ``counts`` (phase -> clusters)."""
        self.clusters_by_phase.clear()
        for phase, count in counts.items():
            self.clusters_by_phase.labels(phase=phase).set(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
