"""Controller metrics: a deleted broadcast's series leave the registry; the broadcast's clock (the run it waits on,
its last success and last run) as the alert rules read it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from prometheus_client import generate_latest

from controller import metrics
from controller.metrics import Observed
from tests.support.builders import a_broadcast


def _exposed() -> str:
    return generate_latest(metrics.REGISTRY).decode()


def test_a_deleted_broadcasts_run_series_are_removed_and_others_kept() -> None:
    metrics.seen("metrics-test", "gone")
    metrics.seen("metrics-test", "kept")
    metrics.run_finished("metrics-test", "gone", "Succeeded", "RunSucceeded")
    metrics.run_finished("metrics-test", "gone", "Failed", "DeadlineExceeded")
    metrics.run_finished("metrics-test", "kept", "Succeeded", "RunSucceeded")
    assert _exposed().count('broadcast="gone"') == 4  # _total and _created for each of the two series

    metrics.seen("metrics-test", "gone", deleted=True)

    text = _exposed()
    assert 'broadcast="gone"' not in text
    assert (
        'anchor_runs_total{broadcast="kept",namespace="metrics-test",reason="RunSucceeded",result="Succeeded"} 1.0'
        in text
    )
    metrics.seen("metrics-test", "kept", deleted=True)


def test_gpu_time_and_cost_add_up_per_broadcast_and_leave_with_it() -> None:
    from api.status import RunCost

    metrics.seen("metrics-cost", "daily")
    cost = RunCost(currency="USD", on_demand=0.125, spot=0.05)
    metrics.run_finished("metrics-cost", "daily", "Succeeded", "RunSucceeded", 180.0, cost)
    metrics.run_finished("metrics-cost", "daily", "Succeeded", "RunSucceeded", 180.0, cost)
    text = _exposed()
    assert 'anchor_run_gpu_seconds_total{broadcast="daily",namespace="metrics-cost"} 360.0' in text
    on_demand = 'anchor_run_cost_total{broadcast="daily",currency="USD",namespace="metrics-cost",pricing="on_demand"}'
    assert f"{on_demand} 0.25" in text
    metrics.seen("metrics-cost", "daily", deleted=True)
    assert 'namespace="metrics-cost"' not in _exposed()


# -- The broadcast's clock ----------------------------------------------------------------------------------

NS = "metrics-clock"
DAY = 24 * 3600.0


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _observed(schedule: str | None = "0 6 * * *", *, status: dict[str, Any] | None = None, **spec: Any) -> Observed:
    """What the event handler reads from a broadcast created on 1 March 2026 at 10:00 UTC."""
    body = a_broadcast("daily").set(**({"schedule": schedule} if schedule else {}), **spec).in_namespace(NS).dict()
    body["metadata"]["creationTimestamp"] = "2026-03-01T10:00:00Z"
    body["status"] = status or {}
    return Observed.of(body)


def _see(observed: Observed, at: str) -> None:
    metrics.seen(NS, "daily", observed=observed, now=_at(at))


def _gauge(name: str, broadcast: str = "daily", **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, {"namespace": NS, "broadcast": broadcast, **labels})


NEXT = "anchor_broadcast_next_schedule_timestamp_seconds"
LAST_SUCCESS = "anchor_broadcast_last_success_timestamp_seconds"
FAILED = "anchor_broadcast_last_run_failed"


@pytest.fixture(autouse=True)
def _forget_the_clock_broadcasts() -> Iterator[None]:
    yield
    for name in ("daily", "other"):
        metrics.seen(NS, name, deleted=True)


def test_the_run_a_daily_broadcast_waits_on_is_todays_until_it_succeeds_not_the_day_after_yesterdays_success() -> None:
    succeeded = {"lastSuccessfulTime": "2026-03-04T06:10:00Z", "lastRun": {"phase": "Succeeded", "reason": "Done"}}
    _see(_observed(status=succeeded), "2026-03-05T05:59:00+00:00")
    assert _gauge(LAST_SUCCESS) == _at("2026-03-04T06:10:00+00:00")
    assert _gauge(NEXT) == _at("2026-03-05T06:00:00+00:00"), "today's 06:00: not late at 05:59, late after 06:00"
    assert _gauge(FAILED, reason="Done") == 0
    _see(_observed(status=succeeded), "2026-03-05T09:00:00+00:00")
    assert _gauge(NEXT) == _at("2026-03-05T06:00:00+00:00"), "no success since: still today's, now in the past"


def test_a_broadcast_that_never_succeeded_waits_on_the_first_run_after_its_creation() -> None:
    _see(_observed(), "2026-03-09T12:00:00+00:00")
    assert _gauge(NEXT) == _at("2026-03-02T06:00:00+00:00")
    assert _gauge(LAST_SUCCESS) is None and _gauge(FAILED, reason="Done") is None


def test_the_schedule_in_its_zone_across_summer_time() -> None:
    observed = _observed(timeZone="America/New_York", status={"lastSuccessfulTime": "2026-03-07T11:10:00Z"})
    _see(observed, "2026-03-08T09:00:00+00:00")
    assert _gauge(NEXT) == _at("2026-03-08T06:00:00-04:00")  # 10:00 UTC; the day before it was 11:00 UTC


def test_without_a_schedule_or_suspended_nothing_is_due_and_a_resumed_one_counts_from_its_resumption() -> None:
    old_success = {"lastSuccessfulTime": "2026-03-02T06:10:00Z"}
    _see(_observed(status=old_success), "2026-03-02T07:00:00+00:00")
    assert _gauge(NEXT) == _at("2026-03-03T06:00:00+00:00")
    _see(_observed(None, status=old_success), "2026-03-02T08:00:00+00:00")
    assert _gauge(NEXT) is None, "schedule removed: it runs once, nothing is due"
    assert _gauge(LAST_SUCCESS) is not None
    _see(_observed(suspend=True, status=old_success), "2026-03-03T08:00:00+00:00")
    assert _gauge(NEXT) is None, "suspended"
    # Resumed a week after its last success: the first run due is the one after the resumption, not a week ago's.
    _see(_observed(status=old_success), "2026-03-09T10:00:00+00:00")
    assert _gauge(NEXT) == _at("2026-03-10T06:00:00+00:00")
    _see(_observed(status=old_success), "2026-03-10T10:00:00+00:00")
    assert _gauge(NEXT) == _at("2026-03-10T06:00:00+00:00"), "the same schedule keeps counting from then"


def test_a_changed_schedule_counts_from_the_change_and_one_that_names_no_time_leaves_no_series() -> None:
    success = {"lastSuccessfulTime": "2026-03-02T06:10:00Z"}
    _see(_observed("0 6 * * 1", status=success), "2026-03-04T12:00:00+00:00")
    assert _gauge(NEXT) == _at("2026-03-09T06:00:00+00:00")  # weekly, Mondays
    _see(_observed(status=success), "2026-03-04T12:00:00+00:00")
    assert _gauge(NEXT) == _at("2026-03-05T06:00:00+00:00"), "daily from the change, not from Monday's success"
    _see(_observed("61 6 * * *", status=success), "2026-03-04T13:00:00+00:00")
    assert _gauge(NEXT) is None and _gauge(LAST_SUCCESS) == _at("2026-03-02T06:10:00+00:00")
    _see(_observed(status={"lastSuccessfulTime": "9999-12-31T23:59:59Z"}), "2026-03-04T14:00:00+00:00")
    assert _gauge(NEXT) is None, "no run after the calendar's end: no series, and no error for the event handler"


def test_the_last_runs_result_is_one_series_whose_reason_follows_the_run() -> None:
    failed = {"lastRun": {"phase": "Failed", "reason": "DeadlineExceeded"}}
    metrics.seen(NS, "daily", observed=_observed(status=failed))
    assert _gauge(FAILED, reason="DeadlineExceeded") == 1
    recovered = {"lastRun": {"phase": "Succeeded", "reason": "RunSucceeded"}, "lastSuccessfulTime": "2026-03-05T06:09Z"}
    metrics.seen(NS, "daily", observed=_observed(status=recovered))
    assert _gauge(FAILED, reason="RunSucceeded") == 0
    assert _gauge(FAILED, reason="DeadlineExceeded") is None


def test_what_the_handler_reads_is_read_leniently() -> None:
    body = {
        "metadata": {"creationTimestamp": "not a time"},
        "spec": {"schedule": 7, "timeZone": ["UTC"], "suspend": "yes"},
        "status": {"lastSuccessfulTime": "2026-03-05T06:09:30.5+09:00", "lastRun": "Failed"},
    }
    assert Observed.of(body) == Observed(last_success=_at("2026-03-04T21:09:30.5+00:00"))
    assert Observed.of({"status": None, "spec": None}) == Observed()


def test_a_queued_run_is_one_series_until_it_stops_waiting_and_every_clock_series_leaves_with_the_broadcast() -> None:
    queued = "anchor_run_queued_since_timestamp_seconds"
    metrics.run_queued(NS, "daily", 1_772_700_000.0)
    metrics.run_queued(NS, "other", 1_772_700_100.0)
    assert _gauge(queued) == 1_772_700_000.0
    metrics.run_queued(NS, "daily", None)
    assert _gauge(queued) is None and _gauge(queued, "other") == 1_772_700_100.0
    metrics.run_queued(NS, "daily", None)  # twice: nothing to remove, no error

    status = {"lastSuccessfulTime": "2026-03-02T06:10:00Z", "lastRun": {"phase": "Failed", "reason": "Crashed"}}
    metrics.seen(NS, "other", observed=_observed(status=status))
    assert 'broadcast="other"' in _exposed()
    metrics.seen(NS, "other", deleted=True)
    assert 'broadcast="other"' not in _exposed()
