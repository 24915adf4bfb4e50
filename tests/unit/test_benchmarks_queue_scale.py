"""benchmarks/queue_scale.py's pure parts on made-up inputs: the model, the schedule minute, the histogram and the
audit log's count. Nothing here starts a cluster or times anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from benchmarks.queue_scale import (
    Histogram,
    Ledger,
    daily_at,
    handovers,
    parse_args,
    predicted_makespan,
    requests_of,
    schedule_minute,
    tally,
    waves,
)

METRICS = """\
# HELP anchor_reconcile_duration_seconds Time one NewsBroadcast reconciliation took (parse, build, apply).
# TYPE anchor_reconcile_duration_seconds histogram
anchor_reconcile_duration_seconds_bucket{le="0.01"} 50.0
anchor_reconcile_duration_seconds_bucket{le="0.05"} 90.0
anchor_reconcile_duration_seconds_bucket{le="0.1"} 100.0
anchor_reconcile_duration_seconds_bucket{le="+Inf"} 100.0
anchor_reconcile_duration_seconds_count 100.0
anchor_reconcile_duration_seconds_sum 2.5
anchor_reconcile_duration_seconds_created 1.7e9
anchor_reconcile_errors_total{reason="ApiError"} 3.0
"""


@pytest.mark.parametrize(("count", "gpus", "expected"), [(200, 4, 50), (201, 4, 51), (3, 4, 1), (8, 1, 8)])
def test_the_queue_drains_in_whole_waves(count: int, gpus: int, expected: int) -> None:
    assert waves(count, gpus) == expected


def test_the_model_is_waves_times_run_time_and_overhead() -> None:
    assert predicted_makespan(200, 4, 1200) == 60_000  # 20-minute runs: 50 waves, about 17 hours
    assert predicted_makespan(200, 4, 5, overhead_seconds=2) == 350


@pytest.mark.parametrize(
    ("now", "lead", "minute"),
    [
        (datetime(2026, 12, 4, 6, 59, 10, tzinfo=UTC), 45, datetime(2026, 12, 4, 7, 0, tzinfo=UTC)),
        (datetime(2026, 12, 4, 6, 59, 20, tzinfo=UTC), 40, datetime(2026, 12, 4, 7, 0, tzinfo=UTC)),
        (datetime(2026, 12, 4, 6, 59, 20, 1, tzinfo=UTC), 40, datetime(2026, 12, 4, 7, 1, tzinfo=UTC)),
        (datetime(2026, 12, 4, 23, 59, 50, tzinfo=UTC), 45, datetime(2026, 12, 5, 0, 1, tzinfo=UTC)),
    ],
)
def test_the_schedule_minute_is_the_first_whole_minute_after_the_lead(
    now: datetime, lead: float, minute: datetime
) -> None:
    assert schedule_minute(now, lead) == minute


def test_the_schedule_is_daily_in_utc_whatever_the_local_zone() -> None:
    tokyo = datetime(2026, 12, 4, 16, 0, 30, tzinfo=timezone(timedelta(hours=9)))
    minute = schedule_minute(tokyo, 45)
    assert minute == datetime(2026, 12, 4, 7, 2, tzinfo=UTC)
    assert daily_at(minute) == "2 7 * * *"


def test_a_histogram_is_read_from_the_metrics_text() -> None:
    histogram = Histogram.parse(METRICS, "anchor_reconcile_duration_seconds")
    assert histogram.buckets == ((0.01, 50.0), (0.05, 90.0), (0.1, 100.0), (float("inf"), 100.0))
    assert (histogram.count, histogram.total) == (100.0, 2.5)


def test_quantiles_interpolate_within_the_bucket_as_prometheus_does() -> None:
    histogram = Histogram.parse(METRICS, "anchor_reconcile_duration_seconds")
    assert histogram.quantile(0.5) == pytest.approx(0.01)
    assert histogram.quantile(0.7) == pytest.approx(0.03)  # halfway through the (0.01, 0.05] bucket
    assert histogram.quantile(0.99) == pytest.approx(0.095)
    assert histogram.bucket(0.99) == (0.05, 0.1)
    assert histogram.bucket(0.3) == (0.0, 0.01)


def test_a_quantile_in_the_open_bucket_is_the_highest_finite_bound() -> None:
    text = 'h_bucket{le="1"} 1\nh_bucket{le="+Inf"} 10\nh_count 10\nh_sum 50\n'
    assert Histogram.parse(text, "h").quantile(0.99) == 1.0


def test_label_sets_are_added_up_and_an_empty_histogram_has_no_quantile() -> None:
    text = 'h_bucket{result="a",le="1"} 1\nh_bucket{le="1",result="b"} 2\nh_bucket{le="+Inf",result="b"} 3\n'
    assert Histogram.parse(text, "h").buckets == ((1.0, 3.0), (float("inf"), 3.0))
    assert Histogram.parse("", "h").quantile(0.5) is None


def _audit(audit_id: str, stage: str, verb: str, at: str, user: str = "anchor-controller", **ref: str) -> dict:
    return {
        "auditID": audit_id,
        "stage": stage,
        "verb": verb,
        "user": {"username": user},
        "objectRef": ref,
        "requestURI": "/api",
        "requestReceivedTimestamp": at,
        "responseStatus": {"code": 200 if verb != "patch" else 409},
    }


def test_the_audit_log_counts_each_request_of_the_user_once_and_watches_apart() -> None:
    events = [
        _audit("w", "ResponseStarted", "watch", "2026-12-04T07:00:00.000000Z", resource="workloads"),
        _audit("a", "ResponseComplete", "get", "2026-12-04T07:00:01.500000Z", resource="newsbroadcasts"),
        _audit(
            "b", "ResponseComplete", "patch", "2026-12-04T07:00:02Z", resource="newsbroadcasts", subresource="status"
        ),
        _audit("w", "ResponseComplete", "watch", "2026-12-04T07:00:00.000000Z", resource="workloads"),
        _audit("k", "ResponseComplete", "get", "2026-12-04T07:00:01Z", user="kueue", resource="workloads"),
        _audit("c", "ResponseComplete", "get", "2026-12-04T07:00:09Z", resource="newsbroadcasts"),
    ]
    found = requests_of(events, "anchor-controller")
    assert [r.verb for r in found] == ["watch", "get", "patch", "get"]
    start = datetime(2026, 12, 4, 7, 0, tzinfo=UTC).timestamp()
    counted = tally(found, start, start + 5)
    assert counted == {
        "requests": 2,
        "watches": 1,
        "byVerb": {"get newsbroadcasts": 1, "patch newsbroadcasts/status": 1},
        "byCode": {"200": 1, "409": 1},
    }


def test_a_gpu_is_idle_from_one_run_ending_to_the_next_starting() -> None:
    # two GPUs: runs a and b start at 0 and 1; c takes the GPU a gave back at 5, d the one b gave back at 6
    started, ended = [0.0, 1.0, 5.5, 7.0], [6.0, 5.0, 9.0]
    assert handovers(started, ended, gpus=2) == [0.5, 1.0]
    assert handovers([0.0, 1.0], [], gpus=2) == []


def test_the_ledger_keeps_the_most_admitted_at_once() -> None:
    ledger = Ledger()

    def workload(name: str, *conditions: str) -> dict:
        return {
            "metadata": {"name": name},
            "status": {"conditions": [{"type": c, "status": "True"} for c in conditions]},
        }

    for n in range(3):
        ledger.workload("ADDED", workload(f"w{n}"), 0.0)
    ledger.workload("MODIFIED", workload("w0", "Admitted"), 1.0)
    ledger.workload("MODIFIED", workload("w1", "Admitted"), 2.0)
    ledger.workload("MODIFIED", workload("w0", "Admitted", "Finished"), 3.0)
    ledger.workload("MODIFIED", workload("w2", "Admitted"), 4.0)
    assert ledger.max_admitted == 2 and ledger.admitted_now == {"w1", "w2"}
    assert ledger.workloads_admitted == {"w0": 1.0, "w1": 2.0, "w2": 4.0}


def test_the_default_is_a_short_run_and_the_full_size_twenty_seconds() -> None:
    assert parse_args([]).run_seconds == 2
    assert parse_args(["--full"]).run_seconds == 20
    assert parse_args(["--run-seconds", "5"]).run_seconds == 5


def test_the_budget_follows_the_model_unless_given() -> None:
    assert parse_args(["--run-seconds", "5"]).budget == 3 * 250 + 300
    assert parse_args(["--budget", "60"]).budget == 60


@pytest.mark.parametrize("argv", [["--gpus", "0"], ["--run-seconds", "0"], ["--full", "--run-seconds", "5"]])
def test_nonsense_is_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_the_ledger_splits_a_runs_recording_into_the_job_controllers_part_and_the_controllers() -> None:
    ledger = Ledger()
    labels = {"anchor.news/broadcast": "morning", "batch.kubernetes.io/job-name": "morning-29412"}
    pod = {"metadata": {"name": "morning-29412-x", "labels": labels}, "status": {"phase": "Succeeded"}}
    ledger.pod("MODIFIED", pod, 10.0)
    complete = {
        "metadata": {"name": "morning-29412"},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }
    ledger.job("MODIFIED", complete, 11.0)
    ledger.job("MODIFIED", complete, 12.0)  # seen again: the first time counts
    ledger.broadcast(
        "MODIFIED", {"metadata": {"name": "morning"}, "status": {"lastRun": {"phase": "Succeeded"}}}, 11.25
    )
    assert ledger.record_lags() == {
        "podEndedToJobComplete": [1.0],
        "jobCompleteToRecorded": [0.25],
        "podEndedToRecorded": [1.25],
    }
