"""When a broadcast's CronJob fires, reckoned as Kubernetes' CronJob controller does (robfig/cron v3's standard
parser: five fields or a macro, in spec.timeZone).

cronsim does the calendar. It follows Debian's cron, which differs from the CronJob controller in three places,
narrowed here so that no run is promised that Kubernetes would not start:
- Macros: cronsim has none; the six spec.schedule allows are robfig's five-field equivalents.
- "Day of month or day of week": when neither field is a star, either matching is enough. robfig counts "*/2" as a
  restriction (a step over 1 drops its star), Debian as a star (the field begins with one), so "0 6 */2 * MON" runs
  on odd days and Mondays for Kubernetes, on odd Mondays for Debian. Such a step is given to cronsim as a range.
- A time the clock skips when summer time begins (02:30 in New York on that Sunday) never comes for robfig: that day
  has no run. Debian runs it at the end of the gap (03:00); such a run is skipped here.
When summer time ends robfig runs a time the clock passes twice (01:30 in New York) twice, Debian once, at the first.
The second run is not reported: the next run is then said to be later than Kubernetes' extra one, never earlier.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_SKIPS = 8  # candidates moved out of a DST gap in a row before giving up; one per gap is what happens


class ScheduleError(ValueError):
    """A schedule or time zone that names no time."""


def next_run(schedule: str, time_zone: str, after: datetime) -> datetime:
    """The first time after `after` (timezone-aware) that the schedule fires, in the schedule's zone."""
    expression = standard(schedule)
    try:
        zone = ZoneInfo(time_zone)
        runs = CronSim(expression, after.astimezone(zone))
        for _ in range(_SKIPS):
            run = next(runs)
            # The wall time the calendar names, or one cronsim moved out of a DST gap (robfig never runs those).
            # Compared as instants: within one zone Python compares wall times, and a start inside the hour that
            # comes twice can yield that hour's first pass, before `after`.
            if run.timestamp() > after.timestamp() and _names(expression, run.replace(tzinfo=None)):
                return run
    except (CronSimError, StopIteration, ValueError, KeyError, OverflowError) as exc:
        raise ScheduleError(f"{schedule!r} in {time_zone!r}: {exc or 'never fires'}") from None
    raise ScheduleError(f"{schedule!r} in {time_zone!r}: no run outside a DST gap")


def standard(schedule: str) -> str:
    """The five fields robfig would read: macros expanded, day fields written so cronsim matches days as it does."""
    fields = MACROS.get(schedule.strip().lower(), schedule).split()
    if len(fields) != 5:
        raise ScheduleError(f"{schedule!r} is not five fields or a macro")
    minute, hour, dom, month, dow = fields
    return " ".join((minute, hour, _day_field(dom, 1, 31), month, _day_field(dow, 0, 6)))


def _day_field(field: str, first: int, last: int) -> str:
    """robfig: a field is a star when a term is `*` or `?` (alone or `/1`), and `*/N` with N over 1 is a range."""
    terms = [term.partition("/") for term in field.split(",")]
    if any(start in ("*", "?") and step in ("", "1") for start, _, step in terms):
        return "*"
    stars = (f"{first}-{last}/{step}" if start in ("*", "?") else start + slash + step for start, slash, step in terms)
    return ",".join(stars)


def _names(expression: str, wall: datetime) -> bool:
    """Whether the calendar names this wall-clock time (a naive datetime: no time zone, no DST)."""
    return next(CronSim(expression, wall - timedelta(seconds=1))) == wall
