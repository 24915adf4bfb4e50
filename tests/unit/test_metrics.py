"""Controller metrics: a deleted broadcast's series leave the registry."""

from __future__ import annotations

from prometheus_client import generate_latest

from controller import metrics


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
