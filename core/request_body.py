"""The JSON body of an API request, checked at the edge: content type, size, syntax, depth.

Every endpoint that takes a JSON body (the proxy's operations and any other app's API) reads it
here, so bad bodies get the same 400/413 with the same codes everywhere.
"""

from __future__ import annotations

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from .errors import ErrorCode, GatewayError


def request_json_body(request: HttpRequest) -> dict:
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise GatewayError(
            400,
            f"Content-Type must be application/json, got {content_type or 'none'}.",
            code=ErrorCode.INVALID_CONTENT_TYPE,
        )
    length = request.META.get("CONTENT_LENGTH")
    limit = settings.GATEWAY_MAX_BODY_BYTES
    if length and length.isdigit() and int(length) > limit:
        raise GatewayError(
            413, f"Request body is {int(length)} bytes; the limit is {limit} bytes.", code=ErrorCode.REQUEST_TOO_LARGE
        )
    try:
        raw = request.body
    except RequestDataTooBig:  # a chunked body with no Content-Length, past Django's own cap
        raise GatewayError(
            413, f"Request body is over the limit of {limit} bytes.", code=ErrorCode.REQUEST_TOO_LARGE
        ) from None
    if len(raw) > limit:
        raise GatewayError(
            413, f"Request body is {len(raw)} bytes; the limit is {limit} bytes.", code=ErrorCode.REQUEST_TOO_LARGE
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, f"Request body is not valid JSON: {exc}", code=ErrorCode.INVALID_JSON) from None
    if not isinstance(body, dict):
        raise GatewayError(400, "Request body must be a JSON object.", code=ErrorCode.INVALID_JSON)
    if _nested_deeper_than(body, MAX_JSON_DEPTH):
        # orjson reads up to 1024 levels but writes only 255: deeper would fail on the way upstream.
        raise GatewayError(
            400, f"Request body is nested more than {MAX_JSON_DEPTH} levels deep.", code=ErrorCode.INVALID_JSON
        )
    return body


MAX_JSON_DEPTH = 128


def _nested_deeper_than(value: object, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values() if isinstance(child, (dict, list)))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return False
