from __future__ import annotations

import calendar
import datetime as dt
import logging
import re

from django.db import connection
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from core.api_views import DATABASE_DOWN, UNAUTHENTICATED, ApiView, error_doc
from core.errors import ErrorCode, GatewayError, raise_for_drf

from .metering import ledger_flush_sync
from .renderers import ExactDecimalJSONRenderer
from .selectors import USAGE_DATE_MAX, USAGE_DATE_MIN, BudgetStatus, organization_budget_statuses, usage_summary
from .services import utc_today

# Ledger batches (metering.BATCH_ROWS rows each, per buffer) a /usage request may write first.
USAGE_FLUSH_BATCHES = 1
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date_param(request, name: str) -> dt.date | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        if not _ISO_DATE.match(raw):
            raise ValueError
        value = dt.date.fromisoformat(raw)
    except ValueError:
        raise_for_drf(GatewayError(
            400, f"{name} must be a date as YYYY-MM-DD (UTC).", param=name, code=ErrorCode.INVALID_VALUE))
    if not USAGE_DATE_MIN <= value <= USAGE_DATE_MAX:
        raise_for_drf(GatewayError(
            400, f"{name} must be between {USAGE_DATE_MIN} and {USAGE_DATE_MAX}.", param=name,
            code=ErrorCode.INVALID_VALUE))
    return value


def _month_bounds(day: dt.date) -> tuple[dt.date, dt.date]:
    return day.replace(day=1), day.replace(day=calendar.monthrange(day.year, day.month)[1])


logger = logging.getLogger(__name__)


def _budget_json(status: BudgetStatus) -> dict:
    budget, window = status.budget, status.window
    return {
        "scope": budget.scope,
        "key_prefix": budget.api_key.prefix if budget.api_key_id else None,
        "period": budget.period,
        "mode": budget.mode,
        "amount": budget.amount_usd,
        "spent": status.spent,
        "percent_used": status.percent_used,
        "period_start": window.start.isoformat() if window.start else None,
        "resets_at": window.end.isoformat() if window.end else None,
    }


_MONEY = {"type": "number", "description": "USD, the exact decimal (never rounded through a float)."}
_BUCKET = {"type": "object", "required": ["requests", "tokens", "cost"],
           "properties": {"requests": {"type": "integer"}, "tokens": {"type": "integer"}, "cost": _MONEY}}
USAGE_SCHEMA = {
    "type": "object",
    "required": ["organization", "from_date", "to_date", "currency", "total_cost", "total_requests", "total_tokens",
                 "prompt_tokens", "completion_tokens", "error_requests", "by_model", "by_day", "by_key", "budgets"],
    "properties": {
        "organization": {"type": "string", "description": "The caller's organization's slug."},
        "from_date": {"type": "string", "format": "date"},
        "to_date": {"type": "string", "format": "date"},
        "currency": {"const": "USD"},
        "total_cost": _MONEY,
        "total_requests": {"type": "integer"},
        "total_tokens": {"type": "integer"},
        "prompt_tokens": {"type": "integer"},
        "completion_tokens": {"type": "integer"},
        "error_requests": {"type": "integer"},
        "by_model": {"type": "object", "additionalProperties": _BUCKET},
        "by_day": {"type": "array", "items": {**_BUCKET, "required": ["date", *_BUCKET["required"]], "properties": {
            "date": {"type": "string", "format": "date"}, **_BUCKET["properties"]}}},
        "by_key": {"type": "object", "description": "By key prefix.", "additionalProperties": {
            **_BUCKET, "required": ["label", *_BUCKET["required"]],
            "properties": {"label": {"type": "string"}, **_BUCKET["properties"]}}},
        "budgets": {"type": "array", "items": {
            "type": "object",
            "required": ["scope", "key_prefix", "period", "mode", "amount", "spent", "percent_used", "period_start",
                         "resets_at"],
            "properties": {
                "scope": {"enum": ["organization", "key"]},
                "key_prefix": {"type": ["string", "null"]},
                "period": {"enum": ["day", "week", "month", "total"]},
                "mode": {"enum": ["hard", "soft"]},
                "amount": _MONEY,
                "spent": _MONEY,
                "percent_used": {"type": ["number", "null"]},
                "period_start": {"type": ["string", "null"], "format": "date-time"},
                "resets_at": {"type": ["string", "null"], "format": "date-time"},
            },
        }},
    },
}
_DATE_PARAMETERS = [
    OpenApiParameter(name, OpenApiTypes.DATE, OpenApiParameter.QUERY,
                     description=f"YYYY-MM-DD (UTC), inclusive, {USAGE_DATE_MIN} to {USAGE_DATE_MAX}. {text}")
    for name, text in (("from_date", "Default: the first of to_date's month."),
                       ("to_date", "Default: the end of from_date's month or of the current month, whichever is "
                                   "later."))
]


class UsageApi(ApiView):
    """GET /api/ai/usage?from_date=&to_date=: the caller's organization's usage, dates inclusive (UTC).

    With neither date, the current month. A missing from_date starts at the first of to_date's
    month; a missing to_date ends on the last day of from_date's month or the current month,
    whichever is later. `budgets` lists the organization's budgets (its own and its keys') with
    what was spent in their current period, whatever the dates asked for.
    """

    renderer_classes = [ExactDecimalJSONRenderer]

    @extend_schema(
        operation_id="usage", tags=["Gateway"], summary="The caller's organization's usage and cost",
        parameters=_DATE_PARAMETERS,
        responses={200: OpenApiResponse(USAGE_SCHEMA, description="Usage and budgets."),
                   400: error_doc("A date is malformed or out of range, or to_date is before from_date "
                                  "(`invalid_value`, `param` names it)."),
                   401: UNAUTHENTICATED, 503: DATABASE_DOWN},
    )
    def get(self, request):
        ctx = request.auth
        from_date = _date_param(request, "from_date")
        to_date = _date_param(request, "to_date")
        today = utc_today()
        if to_date is None:
            to_date = _month_bounds(max(from_date or today, today))[1]
        if from_date is None:
            from_date = _month_bounds(to_date)[0]
        if to_date < from_date:
            raise_for_drf(
                GatewayError(
                    400, "to_date must be on or after from_date.", param="to_date", code=ErrorCode.INVALID_VALUE
                )
            )
        # Rows still buffered (at most half a second old) are written first, so a request the
        # caller just made is usually in the answer; but one batch at most: a cluster's backlog
        # is the drainers' work, not a read's (draining 30,000 rows here took seconds and held
        # the ledger's write lock). Outside a transaction only: a test's atomic block must not be
        # committed by the flush's own transaction handling.
        if not connection.in_atomic_block:
            try:
                ledger_flush_sync(max_batches=USAGE_FLUSH_BATCHES)
            except Exception:  # the totals are still right up to the last flush; never fail the read
                logger.warning("usage: ledger flush before reading failed", exc_info=True)
        summary = usage_summary(organization_id=ctx.organization_id, from_date=from_date, to_date=to_date)
        return Response(
            {
                "organization": ctx.organization_slug,
                "from_date": from_date.isoformat(),
                "to_date": to_date.isoformat(),
                "currency": "USD",
                **summary,
                "budgets": [
                    _budget_json(s)
                    for s in organization_budget_statuses(organization_id=ctx.organization_id, now=timezone.now())
                ],
            }
        )
