"""One error type for the whole gateway, rendered in each route's native error body.

OpenAI routes: {"error": {"message", "type", "param", "code"}}; Anthropic routes:
{"type": "error", "error": {"type", "message"}}. Both also carry a top-level `detail` string
(existing client code reads it) and `request_id`.
"""

from __future__ import annotations

import itertools
import logging
import os
from enum import StrEnum
from typing import Any

import orjson
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)

OPENAI = "openai"
ANTHROPIC = "anthropic"

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class ErrorCode(StrEnum):
    """Every `code` the gateway puts in an error body. The values are the wire strings clients
    match on (WIRE.md): rename a member freely, never a value."""

    # authentication and the request's edge
    MISSING_API_KEY = "missing_api_key"
    INVALID_API_KEY = "invalid_api_key"
    INVALID_HOST = "invalid_host"
    INVALID_CONTENT_TYPE = "invalid_content_type"
    INVALID_JSON = "invalid_json"
    REQUEST_TOO_LARGE = "request_too_large"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    # body validation (OpenAI's and Anthropic's own codes)
    INVALID_VALUE = "invalid_value"
    INVALID_TYPE = "invalid_type"
    INVALID_REQUEST_ERROR = "invalid_request_error"
    INVALID_REQUEST_BODY = "invalid_request_body"
    MISSING_REQUIRED_PARAMETER = "missing_required_parameter"
    UNSUPPORTED_PARAMETER = "unsupported_parameter"
    UNSUPPORTED_VALUE = "unsupported_value"
    UNSUPPORTED_HEADER = "unsupported_header"
    UNKNOWN_PARAMETER = "unknown_parameter"
    EMPTY_STRING = "empty_string"
    EMPTY_ARRAY = "empty_array"
    ARRAY_ABOVE_MAX_LENGTH = "array_above_max_length"
    INTEGER_BELOW_MIN_VALUE = "integer_below_min_value"
    INTEGER_ABOVE_MAX_VALUE = "integer_above_max_value"
    OPTION_NOT_ALLOWED = "option_not_allowed"
    # the model and its routes
    MODEL_NOT_FOUND = "model_not_found"
    MODEL_WRONG_TYPE = "model_wrong_type"  # e.g. an embedding model on chat completions
    MODEL_NOT_ALLOWED = "model_not_allowed"
    MODEL_NOT_PRICED = "model_not_priced"
    NO_ROUTE_AVAILABLE = "no_route_available"
    PROVIDER_NOT_CONFIGURED = "provider_not_configured"
    # admission
    RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"
    BUDGET_EXCEEDED = "budget_exceeded"
    BUDGET_UNAVAILABLE = "budget_unavailable"
    # the provider and the gateway's own state
    UPSTREAM_INVALID_REQUEST = "upstream_invalid_request"
    UPSTREAM_RATE_LIMITED = "upstream_rate_limited"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_ERROR = "upstream_error"
    DATABASE_UNAVAILABLE = "database_unavailable"


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: ErrorCode | str | None = None,  # str: DRF's own codes (not_found, parse_error, ...) passed on
        param: str | None = None,
        error_type: str | None = None,
        anthropic_error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.error_type = error_type
        self.anthropic_error_type = anthropic_error_type
        self.headers = headers or {}

    def openai_type(self) -> str:
        if self.error_type:
            return self.error_type
        return _OPENAI_TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")

    def anthropic_type(self) -> str:
        if self.anthropic_error_type:
            return self.anthropic_error_type
        return _ANTHROPIC_TYPES.get(self.status, "api_error" if self.status >= 500 else "invalid_request_error")

    def body(self, fmt: str, request_id: str) -> dict[str, Any]:
        if fmt == ANTHROPIC:
            return {
                "type": "error",
                "error": {"type": self.anthropic_type(), "message": self.message},
                "request_id": request_id,
                "detail": self.message,
            }
        return {
            "error": {"message": self.message, "type": self.openai_type(), "param": self.param, "code": self.code},
            "detail": self.message,
            "request_id": request_id,
        }


# A random per-process prefix plus a counter: unique across processes and restarts without a
# syscall per request (uuid4 reads os.urandom each time, which showed in the profile).
# Re-seeded in forked children, so two workers of one server never share a sequence.
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count()


def _reseed() -> None:
    global _ID_PREFIX, _id_counter
    _ID_PREFIX = os.urandom(8).hex()
    _id_counter = itertools.count()


os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> str:
    return f"req_{_ID_PREFIX}{next(_id_counter):016x}"


def request_id_headers(request_id: str) -> dict[str, str]:
    # x-request-id feeds the OpenAI SDK's e.request_id, request-id the Anthropic SDK's.
    return {"x-request-id": request_id, "request-id": request_id}


def error_response(exc: GatewayError, fmt: str, request_id: str) -> HttpResponse:
    response = HttpResponse(
        orjson.dumps(exc.body(fmt, request_id)), status=exc.status, content_type="application/json"
    )
    for name, value in {**request_id_headers(request_id), **exc.headers}.items():
        response[name] = value
    return response


def drf_exception_handler(exc: Exception, context: dict) -> Any:
    """DRF errors (auth, validation, 404) in the OpenAI body, plus `detail`; a database that
    cannot be reached is a 503 in the same body (as /health says), never Django's HTML 500."""
    # Imported here: rest_framework.views loads the authentication classes, which raise these errors.
    from rest_framework.views import exception_handler as drf_default_handler

    request = context.get("request")
    request_id = getattr(request, "gateway_request_id", None) or new_request_id()
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database unavailable request_id=%s: %s", request_id, type(exc).__name__)
        err = GatewayError(
            503, "The gateway's database is unavailable; retry shortly.", code=ErrorCode.DATABASE_UNAVAILABLE
        )
        return Response(err.body(OPENAI, request_id), status=503, headers=request_id_headers(request_id))
    response = drf_default_handler(exc, context)
    if response is None:
        return None
    gateway_error = getattr(exc, "gateway_error", None)
    if gateway_error is not None:
        message, code, param = gateway_error.message, gateway_error.code, gateway_error.param
    elif isinstance(exc, drf_exceptions.ValidationError):
        param, message = _first_validation_error(exc.detail)
        code = ErrorCode.INVALID_VALUE
    else:
        detail = getattr(exc, "detail", str(exc))
        message = str(detail)
        code = getattr(detail, "code", None)
        param = None
        if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
            code = ErrorCode.INVALID_API_KEY
            response.status_code = 401
    err = GatewayError(response.status_code, message, code=code, param=param)
    response.data = err.body(OPENAI, request_id)
    for name, value in request_id_headers(request_id).items():
        response[name] = value
    return response


def _first_validation_error(detail: Any, path: str = "") -> tuple[str | None, str]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{path}.{key}" if path else str(key)
            return _first_validation_error(value, "" if key == "non_field_errors" else name)
    if isinstance(detail, list) and detail:
        return _first_validation_error(detail[0], path)
    return (path or None), (f"{path}: {detail}" if path else str(detail))


def raise_for_drf(exc: GatewayError) -> None:
    """Raise a GatewayError inside a DRF view; DRF's handler needs an APIException."""
    raise _DrfGatewayError(exc)


class _DrfGatewayError(drf_exceptions.APIException):
    def __init__(self, exc: GatewayError) -> None:
        super().__init__(detail=exc.message, code=exc.code)
        self.status_code = exc.status
        self.gateway_error = exc
