"""What a dashboard URL asks for: range preset or custom dates, filters, display time zone.

Everything lives in the query string so a view can be bookmarked and shared. Bad values are a
ParamError with a message for the page, never a 500.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from django.utils import timezone

from billing.usage_hourly import hour_ceil, hour_floor
from core.time_zones import zone

PRESETS = {"24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30), "90d": dt.timedelta(days=90)}
DEFAULT_RANGE = "7d"
MAX_CUSTOM_DAYS = 400
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:00$")


class ParamError(ValueError):
    pass


@dataclass(frozen=True)
class View:
    range: str = DEFAULT_RANGE
    start_date: dt.date | None = None  # custom range, local dates, inclusive
    end_date: dt.date | None = None
    org: str = ""
    key: str = ""
    model: str = ""
    provider: str = ""
    stack: str = "org"  # overview spend chart: stacked by "org" or "model"
    tz: str = ""
    # Ledger drill-down: one chart bucket (local date, or local hour as YYYY-MM-DDTHH:00).
    at: str = ""
    status: str = ""  # ledger drill-down: "errors" for rows with status >= 400

    @property
    def bucket(self) -> str:
        return "hour" if self.range == "24h" else "day"

    def window(self, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
        """[start, end) in whole UTC hours."""
        now = now or timezone.now()
        tz = zone(self.tz)
        if self.at:
            return _bucket_window(self.at, tz)
        if self.range == "custom":
            start = dt.datetime.combine(self.start_date, dt.time.min, tzinfo=tz)
            end = dt.datetime.combine(self.end_date + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
            return hour_floor(start), hour_ceil(end.astimezone(dt.timezone.utc))
        end = hour_ceil(now)
        if self.range == "24h":
            return end - PRESETS["24h"], end
        days = PRESETS[self.range].days
        first = now.astimezone(tz).date() - dt.timedelta(days=days - 1)
        return hour_floor(dt.datetime.combine(first, dt.time.min, tzinfo=tz)), end

    def query(self, **changes) -> str:
        """This view's query string with `changes` (None or "" drops a parameter)."""
        view = replace(self, **{k: v for k, v in changes.items() if k in self.__dataclass_fields__})
        params = {
            "range": view.range,
            "start": view.start_date.isoformat() if view.range == "custom" and view.start_date else "",
            "end": view.end_date.isoformat() if view.range == "custom" and view.end_date else "",
            "org": view.org, "key": view.key, "model": view.model, "provider": view.provider,
            "stack": view.stack if view.stack != "org" else "", "tz": view.tz, "at": view.at, "status": view.status,
        }
        return urlencode({k: v for k, v in params.items() if v})


def _bucket_window(at: str, tz) -> tuple[dt.datetime, dt.datetime]:
    if _HOUR.match(at):
        start = dt.datetime.fromisoformat(at).replace(tzinfo=tz)
        return hour_floor(start), hour_floor(start) + dt.timedelta(hours=1)
    day = dt.date.fromisoformat(at)
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    return hour_floor(start), hour_floor(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz))


def _date(raw: str, name: str) -> dt.date:
    if not _DATE.match(raw):
        raise ParamError(f"{name} must be a date as YYYY-MM-DD, got {raw!r}.")
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ParamError(f"{name} must be a real date, got {raw!r}.") from None


def view_parse(params, *, default_tz: str = "") -> View:
    """The View a query string names. Raises ParamError with a message for the page."""
    get = lambda name: (params.get(name) or "").strip()  # noqa: E731
    range_ = get("range") or DEFAULT_RANGE
    start_date = end_date = None
    if range_ == "custom" or (get("start") and get("end")):
        range_ = "custom"
        if not get("start") or not get("end"):
            raise ParamError("A custom range needs both start and end dates (YYYY-MM-DD).")
        start_date, end_date = _date(get("start"), "start"), _date(get("end"), "end")
        if end_date < start_date:
            raise ParamError("The end date must be on or after the start date.")
        if (end_date - start_date).days >= MAX_CUSTOM_DAYS:
            raise ParamError(f"A custom range is at most {MAX_CUSTOM_DAYS} days.")
    elif range_ not in PRESETS:
        raise ParamError(f"range must be one of {', '.join(PRESETS)} or custom, got {range_!r}.")
    tz = get("tz") or default_tz
    try:
        zone(tz)
    except ValueError as exc:
        raise ParamError(str(exc)) from None
    stack = get("stack") or "org"
    if stack not in ("org", "model"):
        raise ParamError("stack must be org or model.")
    at = get("at")
    if at:
        try:
            if not (_HOUR.match(at) or _DATE.match(at)):
                raise ValueError
            _bucket_window(at, zone(tz))
        except ValueError:
            raise ParamError("at must be a date (YYYY-MM-DD) or an hour (YYYY-MM-DDTHH:00).") from None
    status = get("status")
    if status not in ("", "errors"):
        raise ParamError("status must be errors or empty.")
    return View(range=range_, start_date=start_date, end_date=end_date, org=get("org"), key=get("key"),
                model=get("model")[:200], provider=get("provider")[:60], stack=stack, tz=tz, at=at, status=status)
