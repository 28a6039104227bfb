"""GET /api/ai/admin/usage: usage across organizations for staff, in the shape of OpenAI's and
Anthropic's admin usage APIs (time buckets with grouped results, cursor pagination).

    ?start=2025-01-01T00:00:00Z (or a date, or unix seconds)  &end=... (default: now)
    &bucket=1h|1d (UTC)  &group_by=organization,key,model  &limit=<buckets per page>  &page=<cursor>

Authenticated as a staff user: `Authorization: Bearer dms_...` (a staff token, manage.py
issue_staff_token) or the admin's session cookie. Organization API keys are refused: this is
every organization's data.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import authentication, exceptions, permissions
from rest_framework.response import Response

from core.api_views import DATABASE_DOWN, ApiView, error_doc
from core.errors import ErrorCode, GatewayError, raise_for_drf
from orgs.members import STAFF_TOKEN_PREFIX, staff_token_user

from .renderers import ExactDecimalJSONRenderer
from .usage_hourly import UsageScope, hour_ceil, usage_aggregate, usage_names

UTC = dt.timezone.utc
BUCKETS = {"1h": dt.timedelta(hours=1), "1d": dt.timedelta(days=1)}
LIMITS = {"1h": (24, 168), "1d": (7, 31)}  # default and maximum buckets per page, as OpenAI's
GROUPS = {"organization": "organization_id", "key": "api_key_id", "model": "model_name"}
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


class StaffTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = header[7:].strip()
        if not token.startswith(STAFF_TOKEN_PREFIX):
            raise exceptions.AuthenticationFailed(
                "This API needs a staff token (dms_..., manage.py issue_staff_token); organization keys cannot read it."
            )
        user = staff_token_user(token)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked staff token.")
        return user, None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="admin"'


class StaffSessionAuthentication(authentication.BaseAuthentication):
    """The admin's session cookie. /api/ai/ runs without Django's session middleware (the lean
    handler), so the session is read here. GET only: nothing to forge across sites."""

    def authenticate(self, request):
        from importlib import import_module

        session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        if not session_key:
            return None
        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user_id = store.get(SESSION_KEY)
        if user_id is None:
            return None
        user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
        if user is None:
            return None
        # A session whose password changed since is no longer valid (Django's own rule).
        from django.contrib.auth import HASH_SESSION_KEY
        from django.utils.crypto import constant_time_compare

        if not constant_time_compare(store.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()):
            return None
        return user, None


class IsStaff(permissions.BasePermission):
    message = "Staff only: log in to the admin as a staff user or use a staff token."

    def has_permission(self, request, view) -> bool:
        return bool(getattr(request.user, "is_staff", False))


def _time(raw: str, name: str) -> dt.datetime:
    raw = raw.strip()
    try:
        if raw.isdigit():
            return dt.datetime.fromtimestamp(int(raw), tz=UTC)
        if not _ISO.match(raw):
            raise ValueError
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise_for_drf(GatewayError(
            400, f"{name} must be an ISO 8601 time (2025-01-31T00:00:00Z), a date or unix seconds.",
            param=name, code=ErrorCode.INVALID_VALUE))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not dt.datetime(2000, 1, 1, tzinfo=UTC) <= value <= dt.datetime(9998, 1, 1, tzinfo=UTC):
        raise_for_drf(GatewayError(400, f"{name} is out of range.", param=name, code=ErrorCode.INVALID_VALUE))
    return value.astimezone(UTC)


def _bucket_floor(moment: dt.datetime, bucket: str) -> dt.datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if bucket == "1d" else moment


def _cursor_encode(moment: dt.datetime) -> str:
    return base64.urlsafe_b64encode(str(int(moment.timestamp())).encode()).decode().rstrip("=")


def _cursor_decode(raw: str) -> dt.datetime:
    try:
        seconds = int(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
        return dt.datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError, OSError):
        raise_for_drf(GatewayError(400, "page is not a cursor this API returned (use next_page as is).",
                                   param="page", code=ErrorCode.INVALID_VALUE))


_NAME = {"type": ["string", "null"]}
_TIME_PARAMETER = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"},
                             {"type": "string", "pattern": r"^\d{1,12}$"}]}
ADMIN_USAGE_SCHEMA = {
    "type": "object", "required": ["object", "data", "has_more", "next_page"],
    "properties": {
        "object": {"const": "page"},
        "data": {"type": "array", "items": {
            "type": "object",
            "required": ["object", "start_time", "end_time", "starting_at", "ending_at", "partial", "results"],
            "properties": {
                "object": {"const": "bucket"},
                "start_time": {"type": "integer"}, "end_time": {"type": "integer"},
                "starting_at": {"type": "string", "format": "date-time"},
                "ending_at": {"type": "string", "format": "date-time"},
                "partial": {"type": "boolean"},
                "results": {"type": "array", "items": {
                    "type": "object",
                    "required": ["object", "num_model_requests", "input_tokens", "output_tokens", "cost_usd"],
                    "properties": {
                        "object": {"const": "organization.usage.result"},
                        "organization": _NAME, "api_key_prefix": _NAME, "model": _NAME,
                        "num_model_requests": {"type": "integer"}, "errors": {"type": "integer"},
                        "input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"},
                        "input_cached_tokens": {"type": "integer"}, "input_cache_write_tokens": {"type": "integer"},
                        "cost_usd": {"type": "number", "description": "USD, the exact decimal."},
                    },
                }},
            },
        }},
        "has_more": {"type": "boolean"},
        "next_page": {"type": ["string", "null"], "description": "Pass as `page` for the next buckets."},
    },
}


class AdminUsageApi(ApiView):
    """Usage across organizations in time buckets, shaped like OpenAI's and Anthropic's admin usage
    APIs (see the module docstring): staff token or the admin's session, never an organization key."""

    authentication_classes = [StaffTokenAuthentication, StaffSessionAuthentication]
    permission_classes = [permissions.IsAuthenticated, IsStaff]
    renderer_classes = [ExactDecimalJSONRenderer]

    @extend_schema(
        operation_id="admin_usage", tags=["Gateway"], summary="Usage across organizations (staff only)",
        parameters=[
            OpenApiParameter("start", _TIME_PARAMETER, OpenApiParameter.QUERY, required=True,
                             description="ISO 8601 time (2025-01-31T00:00:00Z), a date, or unix seconds; "
                                         "2000 to 9997."),
            OpenApiParameter("end", _TIME_PARAMETER, OpenApiParameter.QUERY, description="As start; default now."),
            OpenApiParameter("bucket", str, OpenApiParameter.QUERY, enum=list(BUCKETS),
                             description="Default 1d (UTC)."),
            OpenApiParameter("group_by", str, OpenApiParameter.QUERY,
                             description="Comma-separated: organization, key, model."),
            OpenApiParameter("limit", int, OpenApiParameter.QUERY,
                             description="Buckets per page (1h: 1-168, 1d: 1-31)."),
            OpenApiParameter("page", str, OpenApiParameter.QUERY,
                             description="The `next_page` cursor of the last page."),
        ],
        responses={
            200: OpenApiResponse(ADMIN_USAGE_SCHEMA, description="One page of time buckets."),
            400: error_doc("A parameter is missing or malformed (`param` names it)."),
            401: error_doc("No staff credentials, or an organization key (refused: this is every organization's "
                           "data)."),
            403: error_doc("Logged in, but not staff."),
            503: DATABASE_DOWN,
        },
    )
    def get(self, request):
        q = request.query_params
        bucket = q.get("bucket") or q.get("bucket_width") or "1d"
        if bucket not in BUCKETS:
            raise_for_drf(GatewayError(400, "bucket must be 1h or 1d.", param="bucket", code=ErrorCode.INVALID_VALUE))
        if not q.get("start"):
            raise_for_drf(GatewayError(400, "start is required (ISO 8601 time, date or unix seconds).",
                                       param="start", code=ErrorCode.MISSING_REQUIRED_PARAMETER))
        start = _bucket_floor(_time(q["start"], "start"), bucket)
        end = _time(q["end"], "end") if q.get("end") else timezone.now()
        if end <= start:
            raise_for_drf(GatewayError(400, "end must be after start.", param="end", code=ErrorCode.INVALID_VALUE))
        groups = []
        for raw in q.getlist("group_by") + q.getlist("group_by[]"):
            for name in raw.split(","):
                name = name.strip()
                if name not in GROUPS:
                    raise_for_drf(GatewayError(400, f"group_by takes organization, key and model, not {name!r}.",
                                               param="group_by", code=ErrorCode.INVALID_VALUE))
                if name not in groups:
                    groups.append(name)
        default, maximum = LIMITS[bucket]
        try:
            limit = int(q.get("limit") or default)
            if not 1 <= limit <= maximum:
                raise ValueError
        except ValueError:
            raise_for_drf(GatewayError(400, f"limit is a number of buckets from 1 to {maximum} for {bucket}.",
                                       param="limit", code=ErrorCode.INVALID_VALUE))
        page_start = _cursor_decode(q["page"]) if q.get("page") else start
        if page_start < start or page_start != _bucket_floor(page_start, bucket):
            raise_for_drf(GatewayError(
                400, "page does not belong to this start and bucket.", param="page", code=ErrorCode.INVALID_VALUE))
        width = BUCKETS[bucket]
        page_end = min(page_start + width * limit, hour_ceil(end))
        has_more = page_start + width * limit < end
        data = self._buckets(page_start, page_end, end, width, groups)
        return Response({
            "object": "page",
            "data": data,
            "has_more": has_more,
            "next_page": _cursor_encode(page_start + width * limit) if has_more else None,
        })

    def _buckets(self, start, stop, end, width, groups) -> list[dict]:
        dims = [GROUPS[g] for g in groups]
        scope = UsageScope(start=start, end=stop)  # UTC: buckets are UTC hours or days
        daily = width == BUCKETS["1d"]
        # Day buckets straight from the database (whole UTC days come from the daily roll-up),
        # not 24 hourly rows each merged here.
        rows = usage_aggregate(scope, dims, bucket="day" if daily else "hour")
        org_names, key_names = usage_names(rows)
        by_bucket: dict = {}
        for row in rows:
            b = row["bucket"]
            moment = dt.datetime.combine(b, dt.time.min, tzinfo=UTC) if daily else b.replace(tzinfo=UTC)
            by_bucket.setdefault(moment, []).append(row)
        out = []
        moment = start
        while moment < stop and moment < end:
            results = []
            for s in sorted(by_bucket.get(moment, ()), key=lambda r: [str(r[d]) for d in dims]):
                values = {d: s[d] for d in dims}
                results.append({
                    "object": "organization.usage.result",
                    "organization": org_names.get(values["organization_id"]) if "organization_id" in values else None,
                    "api_key_prefix": key_names.get(values["api_key_id"]) if "api_key_id" in values else None,
                    "model": values.get("model_name"),
                    "num_model_requests": s["requests"],
                    "errors": s["errors"],
                    "input_tokens": s["prompt_tokens"],
                    "output_tokens": s["completion_tokens"],
                    "input_cached_tokens": s["cache_read_tokens"],
                    "input_cache_write_tokens": s["cache_write_tokens"],
                    "cost_usd": s["cost"],
                })
            bucket_end = min(moment + width, end)
            out.append({
                "object": "bucket",
                "start_time": int(moment.timestamp()), "end_time": int((moment + width).timestamp()),
                "starting_at": moment.isoformat().replace("+00:00", "Z"),
                "ending_at": (moment + width).isoformat().replace("+00:00", "Z"),
                "partial": bucket_end < moment + width,
                "results": results,
            })
            moment += width
        return out
