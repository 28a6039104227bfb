"""One error type for the whole gateway, rendered in each route's native error body.

OpenAI routes: {"error": {"message", "type", "param", "code"}}; Anthropic routes:
{"type": "error", "error": {"type", "message"}}. Both also carry a top-level `detail` string
(existing client code reads it) and `request_id`.
"""

from __future__ import annotations

import itertools
import logging
import os
from typing import Any

import orjson
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler

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


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
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
    request = context.get("request")
    request_id = getattr(request, "gateway_request_id", None) or new_request_id()
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database unavailable request_id=%s: %s", request_id, type(exc).__name__)
        err = GatewayError(503, "The gateway's database is unavailable; retry shortly.", code="database_unavailable")
        return Response(err.body(OPENAI, request_id), status=503, headers=request_id_headers(request_id))
    response = drf_default_handler(exc, context)
    if response is None:
        return None
    gateway_error = getattr(exc, "gateway_error", None)
    if gateway_error is not None:
        message, code, param = gateway_error.message, gateway_error.code, gateway_error.param
    elif isinstance(exc, drf_exceptions.ValidationError):
        param, message = _first_validation_error(exc.detail)
        code = "invalid_value"
    else:
        detail = getattr(exc, "detail", str(exc))
        message = str(detail)
        code = getattr(detail, "code", None)
        param = None
        if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
            code = "invalid_api_key"
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
