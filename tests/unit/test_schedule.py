"""When a broadcast's CronJob fires next: cronsim's calendar, narrowed to what Kubernetes' CronJob controller does."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from controller.schedule import MACROS, ScheduleError, next_run, standard

NEW_YORK = ZoneInfo("America/New_York")  # 2026: summer time from Sunday 8 March 02:00, to Sunday 1 November 02:00


def runs(schedule: str, after: datetime, count: int, zone: str = "America/New_York") -> list[datetime]:
    found = []
    for _ in range(count):
        after = next_run(schedule, zone, after)
        found.append(after)
    return found


def test_a_daily_run_keeps_its_wall_time_across_both_dst_changes_so_those_days_are_23_and_25_hours() -> None:
    spring = runs("0 6 * * *", datetime(2026, 3, 7, 7, tzinfo=NEW_YORK), 2)
    assert [r.isoformat() for r in spring] == ["2026-03-08T06:00:00-04:00", "2026-03-09T06:00:00-04:00"]
    assert spring[0] - datetime(2026, 3, 7, 6, tzinfo=NEW_YORK).astimezone(UTC) == timedelta(hours=23)
    autumn = next_run("0 6 * * *", "America/New_York", datetime(2026, 10, 31, 6, tzinfo=NEW_YORK))
    assert autumn.isoformat() == "2026-11-01T06:00:00-05:00"
    assert autumn.timestamp() - datetime(2026, 10, 31, 6, tzinfo=NEW_YORK).timestamp() == 25 * 3600


def test_a_time_the_clock_skips_has_no_run_that_day_as_for_the_cronjob_controller() -> None:
    # cronsim alone (Debian's cron) would run it at 03:00 on 8 March; robfig/cron, and so Kubernetes, does not.
    assert [r.isoformat() for r in runs("30 2 * * *", datetime(2026, 3, 7, 3, tzinfo=NEW_YORK), 2)] == [
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]
    assert next_run("0 3 * * *", "America/New_York", datetime(2026, 3, 8, 1, tzinfo=NEW_YORK)).isoformat() == (
        "2026-03-08T03:00:00-04:00"
    ), "03:00 itself exists"


def test_the_hour_that_comes_twice_runs_a_fixed_time_once_and_a_repeating_one_in_both_passes() -> None:
    fixed = runs("30 1 * * *", datetime(2026, 11, 1, 0, 0, tzinfo=NEW_YORK), 2)
    assert [r.isoformat() for r in fixed] == ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
    half_hourly = runs("*/30 * * * *", datetime(2026, 11, 1, 0, 50, tzinfo=NEW_YORK), 5)
    assert [r.astimezone(UTC).strftime("%H:%M") for r in half_hourly] == ["05:00", "05:30", "06:00", "06:30", "07:00"]
    # Started in the second pass (fold=1), the first pass's 01:45 is already over: never a run before `after`.
    second_pass = datetime(2026, 11, 1, 1, 40, fold=1, tzinfo=NEW_YORK)
    assert next_run("45 1 * * *", "America/New_York", second_pass).isoformat() == "2026-11-02T01:45:00-05:00"


@pytest.mark.parametrize(
    ("macro", "first"),
    [
        ("@yearly", "2027-01-01T00:00:00+09:00"),
        ("@annually", "2027-01-01T00:00:00+09:00"),
        ("@monthly", "2026-07-01T00:00:00+09:00"),
        ("@weekly", "2026-06-21T00:00:00+09:00"),  # Sunday
        ("@daily", "2026-06-18T00:00:00+09:00"),
        ("@midnight", "2026-06-18T00:00:00+09:00"),
        ("@hourly", "2026-06-17T11:00:00+09:00"),
    ],
)
def test_every_macro_the_spec_allows_is_robfigs_five_fields_in_the_broadcasts_zone(macro: str, first: str) -> None:
    after = datetime(2026, 6, 17, 10, 20, tzinfo=ZoneInfo("Asia/Tokyo"))  # a Wednesday
    assert next_run(macro, "Asia/Tokyo", after).isoformat() == first
    assert next_run(macro, "Asia/Tokyo", after) == next_run(MACROS[macro], "Asia/Tokyo", after)


def test_days_match_either_field_when_neither_is_a_star_and_a_stepped_star_is_not_one() -> None:
    after = datetime(2026, 1, 1, 1, tzinfo=UTC)  # a Thursday
    # robfig: "*/10" is the days 1, 11, 21, 31, a restriction, so Mondays or those days (Debian: Mondays among them).
    days = [r.day for r in runs("0 0 */10 * MON", after, 6, "UTC")]
    assert days == [5, 11, 12, 19, 21, 26]
    assert standard("0 0 */10 * */1") == "0 0 1-31/10 * *"
    assert [r.day for r in runs("0 0 13 * 5", after, 3, "UTC")] == [2, 9, 13], "Fridays or the 13th"
    assert [r.day for r in runs("0 0 13 * *", after, 2, "UTC")] == [13, 13]


@pytest.mark.parametrize(
    ("schedule", "zone"),
    [
        ("61 * * * *", "UTC"),
        ("0 6 * *", "UTC"),
        ("@every 1h", "UTC"),
        ("0 0 30 2 *", "UTC"),
        ("0 6 * * *", "Mars/Olympus_Mons"),
        ("0 6 * * *", ""),
    ],
)
def test_a_schedule_or_zone_that_names_no_time_is_a_schedule_error(schedule: str, zone: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(repr(schedule))):
        next_run(schedule, zone, datetime(2026, 1, 1, tzinfo=UTC))
