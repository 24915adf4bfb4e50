"""Prometheus metrics of the controller, on their own registry, served by `anchor controller --metrics`.

Per-broadcast series leave the registry with their broadcast (`seen(..., deleted=True)`), so churn does not grow it.
The broadcast's clock (last success, the run it waits on, its last run's result) is read from each of its events
(`Observed.of`); the chart's alert rules (charts/anchor/templates/prometheusrule.yaml) are written against these.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from controller.schedule import ScheduleError, next_run
from controller.status import unix_time

log = logging.getLogger("anchor.controller")

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

LAST_SUCCESS = Gauge(
    "anchor_broadcast_last_success_timestamp_seconds",
    "When the broadcast's last successful run finished (status.lastSuccessfulTime); absent before its first success.",
    ["namespace", "broadcast"],
    registry=REGISTRY,
)
NEXT_SCHEDULE = Gauge(
    "anchor_broadcast_next_schedule_timestamp_seconds",
    "The scheduled time of the run the broadcast waits on: the first time spec.schedule fires (in spec.timeZone)"
    " after its last success, or after it was created, its schedule changed or it resumed, when later. In the past"
    " while that run is late; absent without a schedule, while suspended, or for a schedule that names no time.",
    ["namespace", "broadcast"],
    registry=REGISTRY,
)
LAST_RUN_FAILED = Gauge(
    "anchor_broadcast_last_run_failed",
    "1 when the broadcast's last finished run failed, 0 when it succeeded, with its reason (status.lastRun); absent"
    " before its first run.",
    ["namespace", "broadcast", "reason"],
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
_last_runs: dict[tuple[str, str], str] = {}  # broadcast → the reason label of its LAST_RUN_FAILED series
_schedules: dict[tuple[str, str], tuple[tuple[str, str] | None, float]] = {}
"""broadcast → the (schedule, time zone) in force, None while it has none or is suspended, and since when."""


@dataclass(frozen=True)
class Observed:
    """What the broadcast's clock gauges read from a NewsBroadcast: its schedule, and the times on its status."""

    schedule: str | None = None
    time_zone: str = "UTC"
    suspended: bool = False
    created: float | None = None
    """metadata.creationTimestamp, a Unix time."""
    last_success: float | None = None
    """status.lastSuccessfulTime, a Unix time."""
    last_run: tuple[str, str] | None = None
    """status.lastRun's phase and reason."""

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Observed:
        """Read leniently, as the object came: a field missing, of the wrong type or not a time is left out."""
        spec, status, metadata = (_mapping(body.get(part)) for part in ("spec", "status", "metadata"))
        schedule, zone, last_run = spec.get("schedule"), spec.get("timeZone"), _mapping(status.get("lastRun"))
        phase, reason = last_run.get("phase"), last_run.get("reason")
        return cls(
            schedule=schedule if isinstance(schedule, str) else None,
            time_zone=zone if isinstance(zone, str) else "UTC",
            suspended=spec.get("suspend") is True,
            created=unix_time(metadata.get("creationTimestamp")),
            last_success=unix_time(status.get("lastSuccessfulTime")),
            last_run=(phase, str(reason or phase)) if phase in ("Succeeded", "Failed") else None,
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


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


def seen(
    namespace: str, name: str, *, deleted: bool = False, observed: Observed | None = None, now: float | None = None
) -> None:
    """A broadcast watched, its clock gauges set from what was `observed` of it (at `now`, a Unix time); when
    deleted, its per-broadcast series go too, so churn does not grow the registry."""
    key = (namespace, name)
    with _lock:
        if deleted:
            _forget(key)
            return
        _managed.add(key)
        if observed is None:
            return
        _set(LAST_SUCCESS, key, observed.last_success)
        _set(NEXT_SCHEDULE, key, _waits_on(key, observed, time.time() if now is None else now))
        _set_last_run(key, observed.last_run)


def _forget(key: tuple[str, str]) -> None:
    namespace, name = key
    _managed.discard(key)
    for result, reason in _series.pop(key, set()):
        RUNS.remove(namespace, name, result, reason)
    for currency, pricing in _costs.pop(key, set()):
        COST.remove(namespace, name, currency, pricing)
    if key in _last_runs:
        LAST_RUN_FAILED.remove(namespace, name, _last_runs.pop(key))
    _schedules.pop(key, None)
    for gauge in (GPU_SECONDS, LAST_SUCCESS, NEXT_SCHEDULE, QUEUED_SINCE):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)


def _set(gauge: Gauge, key: tuple[str, str], value: float | None) -> None:
    if value is not None:
        gauge.labels(*key).set(value)
    else:
        with contextlib.suppress(KeyError):
            gauge.remove(*key)


def _set_last_run(key: tuple[str, str], last_run: tuple[str, str] | None) -> None:
    """One series per broadcast: a new reason replaces the last one's."""
    before = _last_runs.pop(key, None)
    if before is not None and (last_run is None or last_run[1] != before):
        LAST_RUN_FAILED.remove(*key, before)
    if last_run is not None:
        phase, reason = last_run
        _last_runs[key] = reason
        LAST_RUN_FAILED.labels(*key, reason).set(1 if phase == "Failed" else 0)


def _waits_on(key: tuple[str, str], observed: Observed, now: float) -> float | None:
    """The scheduled time of the run the broadcast waits on: the first after its last success, or after the schedule
    came into force if that is later (its creation, or when this controller saw it change or resume; a controller
    that starts counts from the creation). None without a schedule in force."""
    in_force = None if observed.schedule is None or observed.suspended else (observed.schedule, observed.time_zone)
    before = _schedules.get(key)
    if before is None:
        since = now if in_force is None or observed.created is None else observed.created
    else:
        since = before[1] if before[0] == in_force else now
    _schedules[key] = (in_force, since)
    if in_force is None:
        return None
    after = max(since, observed.last_success or since)
    try:
        return next_run(*in_force, datetime.fromtimestamp(after, UTC)).timestamp()
    except (ScheduleError, OverflowError, OSError, ValueError) as exc:  # a schedule or a time beyond the calendar:
        log.debug("no next run for %s/%s: %s", *key, exc)  # the CronJob's apply reports a bad schedule (ApplyFailed)
        return None


def serve(address: str) -> None:
    """Serve /metrics on HOST:PORT (a daemon thread)."""
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host or "0.0.0.0", registry=REGISTRY)  # noqa: S104


QUEUED_SINCE = Gauge(
    "anchor_run_queued_since_timestamp_seconds",
    "When the broadcast's current run began waiting in a Kueue queue; absent when none waits.",
    ["namespace", "broadcast"],
    registry=REGISTRY,
)


def run_queued(namespace: str, broadcast: str, since: float | None) -> None:
    """The broadcast's run waits in a queue since `since` (a Unix time), or (None) waits no longer. The series leaves
    with the broadcast (`seen(..., deleted=True)`)."""
    with _lock:
        _set(QUEUED_SINCE, (namespace, broadcast), since)
