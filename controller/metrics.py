"""Prometheus metrics of the controller, on their own registry, served by `anchor controller --metrics`."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

RUNS = Counter(
    "anchor_runs",
    "Finished broadcast runs, by namespace, broadcast and result (Succeeded, Failed) with the reason.",
    ["namespace", "broadcast", "result", "reason"],
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "anchor_run_duration_seconds",
    "Wall time of finished runs, from the Job's start to its end.",
    ["result"],
    buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "anchor_reconcile_errors",
    "Reconciliations that failed: InvalidSpec, ApplyFailed (the API server refused an object), or an API error"
    " (retried).",
    ["reason"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "anchor_reconcile_duration_seconds",
    "Time one NewsBroadcast reconciliation took (parse, build, apply).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
GPU_SECONDS = Counter(
    "anchor_run_gpu_seconds",
    "GPU time finished runs held: the GPUs of each run's pod times its run time.",
    ["namespace", "broadcast"],
    registry=REGISTRY,
)
COST = Counter(
    "anchor_run_cost",
    "Estimated cost of finished runs' GPU time at the controller's price table (cost.gpuPrices), by pricing.",
    ["namespace", "broadcast", "currency", "pricing"],
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "anchor_webhook_deliveries",
    "Webhook deliveries by result (delivered, failed, dropped).",
    ["result"],
    registry=REGISTRY,
)
QUEUE_WAIT = Histogram(
    "anchor_run_queue_wait_seconds",
    "How long runs waited in a Kueue queue before Kueue admitted them (each admission, a preempted run's too).",
    buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
    registry=REGISTRY,
)

_managed: set[tuple[str, str]] = set()
_lock = threading.Lock()
BROADCASTS = Gauge("anchor_broadcasts_managed", "NewsBroadcasts the controller watches.", registry=REGISTRY)
BROADCASTS.set_function(lambda: len(_managed))


_series: dict[tuple[str, str], set[tuple[str, str]]] = {}  # broadcast → its (result, reason) pairs in RUNS
_costs: dict[tuple[str, str], set[tuple[str, str]]] = {}  # broadcast → its (currency, pricing) pairs in COST


def run_finished(
    namespace: str, broadcast: str, result: str, reason: str, gpu_seconds: float | None = None, cost: Any = None
) -> None:
    """A finished run: counted by result, and its GPU time and estimated cost (an api.status.RunCost) added."""
    with _lock:
        _series.setdefault((namespace, broadcast), set()).add((result, reason))
        RUNS.labels(namespace, broadcast, result, reason).inc()
        if gpu_seconds is not None:
            GPU_SECONDS.labels(namespace, broadcast).inc(gpu_seconds)
        if cost is not None:
            for pricing, amount in (("on_demand", cost.on_demand), ("spot", cost.spot)):
                if amount is not None:
                    _costs.setdefault((namespace, broadcast), set()).add((cost.currency, pricing))
                    COST.labels(namespace, broadcast, cost.currency, pricing).inc(amount)


def seen(namespace: str, name: str, *, deleted: bool = False) -> None:
    """A broadcast watched; when deleted, its per-broadcast series go too, so churn does not grow the registry."""
    with _lock:
        if not deleted:
            _managed.add((namespace, name))
            return
        _managed.discard((namespace, name))
        for result, reason in _series.pop((namespace, name), set()):
            RUNS.remove(namespace, name, result, reason)
        for currency, pricing in _costs.pop((namespace, name), set()):
            COST.remove(namespace, name, currency, pricing)
        with contextlib.suppress(KeyError):
            GPU_SECONDS.remove(namespace, name)


def serve(address: str) -> None:
    """Serve /metrics on HOST:PORT (a daemon thread)."""
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host or "0.0.0.0", registry=REGISTRY)  # noqa: S104


_queued: dict[tuple[str, str], float] = {}
QUEUED_SINCE = Gauge(
    "anchor_run_queued_since_timestamp_seconds",
    "When the broadcast's current run began waiting in a Kueue queue; absent when none waits.",
    ["namespace", "broadcast"],
    registry=REGISTRY,
)


def run_queued(namespace: str, broadcast: str, since: float | None) -> None:
    """The broadcast's run waits in a queue since `since` (a Unix time), or (None) waits no longer."""
    with _lock:
        if since is not None:
            _queued[(namespace, broadcast)] = since
            QUEUED_SINCE.labels(namespace, broadcast).set(since)
        elif _queued.pop((namespace, broadcast), None) is not None:
            QUEUED_SINCE.remove(namespace, broadcast)
