"""Budget periods: calendar-aligned windows in UTC or an organization's time zone.

A month is a calendar month (never 30 days), a week starts on Monday, a day at local midnight;
"total" never resets. Bounds are computed from local calendar dates and then converted, so a day
across a DST change is 23 or 25 hours long, as the people reading the budget expect, and a
midnight that does not exist locally starts the day at the first instant that does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from core.time_zones import zone

DAY, WEEK, MONTH, TOTAL = "day", "week", "month", "total"
PERIODS = (DAY, WEEK, MONTH, TOTAL)


@dataclass(frozen=True)
class PeriodWindow:
    period: str
    start: datetime | None  # aware UTC; None for "total"
    end: datetime | None  # exclusive; None for "total"

    @property
    def key(self) -> str:
        """Stable name of this window (alerts are unique per budget, threshold and window)."""
        return "total" if self.start is None else self.start.strftime("%Y%m%dT%H%M%SZ")

    def fraction_elapsed(self, now: datetime) -> float | None:
        if self.start is None or self.end is None:
            return None
        span = (self.end - self.start).total_seconds()
        return min(1.0, max(0.0, (now - self.start).total_seconds() / span))


def _local_midnight(day: date, tz) -> datetime:
    # fold=0: in a gap the wall time is read with the offset before it, which lands on the first
    # real instant after the gap once converted; in an overlap it is the earlier instant.
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(timezone.utc)


def window(period: str, now: datetime, tz_name: str | None = None) -> PeriodWindow:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if period == TOTAL:
        return PeriodWindow(TOTAL, None, None)
    tz = zone(tz_name)
    today = now.astimezone(tz).date()
    if period == DAY:
        first, after = today, today + timedelta(days=1)
    elif period == WEEK:
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    elif period == MONTH:
        first = today.replace(day=1)
        after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    else:
        raise ValueError(f"unknown budget period {period!r}; use one of {', '.join(PERIODS)}")
    return PeriodWindow(period, _local_midnight(first, tz), _local_midnight(after, tz))
