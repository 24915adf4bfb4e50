"""Prometheus metrics of the controller, on their own registry, served by `anchor controller --metrics`."""

from __future__ import annotations

import threading

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
WEBHOOKS = Counter(
    "anchor_webhook_deliveries",
    "Webhook deliveries by result (delivered, failed, dropped).",
    ["result"],
    registry=REGISTRY,
)

_managed: set[tuple[str, str]] = set()
_lock = threading.Lock()
BROADCASTS = Gauge("anchor_broadcasts_managed", "NewsBroadcasts the controller watches.", registry=REGISTRY)
BROADCASTS.set_function(lambda: len(_managed))


_series: dict[tuple[str, str], set[tuple[str, str]]] = {}  # broadcast → its (result, reason) pairs in RUNS


def run_finished(namespace: str, broadcast: str, result: str, reason: str) -> None:
    with _lock:
        _series.setdefault((namespace, broadcast), set()).add((result, reason))
        RUNS.labels(namespace, broadcast, result, reason).inc()


def seen(namespace: str, name: str, *, deleted: bool = False) -> None:
    """A broadcast watched; when deleted, its per-broadcast series go too, so churn does not grow the registry."""
    with _lock:
        if not deleted:
            _managed.add((namespace, name))
            return
        _managed.discard((namespace, name))
        for result, reason in _series.pop((namespace, name), set()):
            RUNS.remove(namespace, name, result, reason)


def serve(address: str) -> None:
    """Serve /metrics on HOST:PORT (a daemon thread)."""
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host or "0.0.0.0", registry=REGISTRY)  # noqa: S104
