"""Budget periods (billing.periods): calendar-aligned in UTC or the organization's zone, across
month ends, leap days and DST changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from billing.periods import window

UTC = timezone.utc


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_it_uses_calendar_months_not_30_days():
    w = window("month", utc(2026, 1, 31, 23, 59, 59))
    assert (w.start, w.end) == (utc(2026, 1, 1), utc(2026, 2, 1))
    w = window("month", utc(2026, 12, 31, 12))
    assert (w.start, w.end) == (utc(2026, 12, 1), utc(2027, 1, 1))
    assert window("month", utc(2027, 1, 1)).start == utc(2027, 1, 1)  # the first instant is in the new month


def test_it_handles_leap_days():
    w = window("month", utc(2028, 2, 29, 18))
    assert (w.start, w.end) == (utc(2028, 2, 1), utc(2028, 3, 1))
    assert (w.end - w.start) == timedelta(days=29)
    d = window("day", utc(2028, 2, 29, 23, 59))
    assert (d.start, d.end) == (utc(2028, 2, 29), utc(2028, 3, 1))


def test_weeks_start_on_monday():
    w = window("week", utc(2026, 12, 6, 22))  # a Sunday
    assert (w.start, w.end) == (utc(2026, 11, 30), utc(2026, 12, 7))
    assert window("week", utc(2026, 12, 7)).start == utc(2026, 12, 7)


def test_it_follows_the_organizations_zone_across_dst():
    # Berlin springs forward on 2026-03-29: that local day has 23 hours.
    d = window("day", utc(2026, 3, 29, 12), "Europe/Berlin")
    assert (d.start, d.end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    # ... and falls back on 2026-10-25: 25 hours.
    d = window("day", utc(2026, 10, 25, 12), "Europe/Berlin")
    assert (d.end - d.start) == timedelta(hours=25)
    # New York's month of March 2026 starts at 05:00 UTC (EST) and ends at 04:00 UTC (EDT).
    m = window("month", utc(2026, 3, 15), "America/New_York")
    assert (m.start, m.end) == (utc(2026, 3, 1, 5), utc(2026, 4, 1, 4))
    # 23:30 UTC on Jan 31 is already February in Tokyo.
    assert window("month", utc(2026, 1, 31, 23, 30), "Asia/Tokyo").start == utc(2026, 1, 31, 15)


def test_a_missing_local_midnight_starts_the_day_at_the_first_real_instant():
    # Santiago skipped 2026-09-06 00:00 -> 01:00 local (clocks forward at midnight).
    d = window("day", utc(2026, 9, 6, 12), "America/Santiago")
    assert d.start == utc(2026, 9, 6, 4)  # 01:00 at UTC-3
    assert window("day", d.start - timedelta(seconds=1), "America/Santiago").end == d.start


def test_total_never_resets_and_bad_input_is_refused():
    assert window("total", utc(2026, 5, 5)).start is None
    with pytest.raises(ValueError, match="IANA"):
        window("day", utc(2026, 5, 5), "Mars/Olympus")
    with pytest.raises(ValueError, match="period"):
        window("fortnight", utc(2026, 5, 5))
    with pytest.raises(ValueError, match="aware"):
        window("day", datetime(2026, 5, 5))


def test_it_reports_how_much_of_the_period_has_passed():
    w = window("day", utc(2026, 5, 5, 6))
    assert w.fraction_elapsed(utc(2026, 5, 5, 6)) == 0.25
    assert window("total", utc(2026, 5, 5)).fraction_elapsed(utc(2026, 5, 5)) is None
