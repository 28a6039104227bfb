"""Anthropic-format side endpoints: /v1/messages/count_tokens and /v1/models.

count_tokens is native on Anthropic routes (the provider counts) and an estimate elsewhere
(ai_proxy.tokens; the response says which in `x-gateway-token-count`). It costs nothing upstream,
but it is still a call on the key: it counts against the key's and organization's rate limits and leaves a zero-cost
ledger row with endpoint `count_tokens`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

import httpx
import orjson
from django.http import HttpRequest, HttpResponse
from django.utils import timezone as dj_timezone

from billing.models import UsageRecord
from catalog.selectors import ModelEntry, catalog_get
from core.errors import ANTHROPIC, ErrorCode, GatewayError, error_response, new_request_id, request_id_headers
from core.request_body import request_json_body

from .messages_format import messages_count_tokens_validate
from .metering import call_meter
from .proxy import ProxyCall, _admit, request_authenticate
from .tokens import tokens_for_request
from .upstream import COUNT_TOKENS_PATH, provider_error_message, upstream_send

logger = logging.getLogger(__name__)


def _json(payload: dict, request_id: str, status: int = 200, extra: dict | None = None) -> HttpResponse:
    response = HttpResponse(orjson.dumps(payload), status=status, content_type="application/json")
    for name, value in {**request_id_headers(request_id), **(extra or {})}.items():
        response[name] = value
    return response


async def anthropic_count_tokens(request: HttpRequest) -> HttpResponse:
    call = ProxyCall(
        request_id=new_request_id(),
        client_format=ANTHROPIC,
        started_at=dj_timezone.now(),
        t0=time.perf_counter(),
        client_ip=request.META.get("REMOTE_ADDR") or None,
        endpoint=UsageRecord.Endpoint.COUNT_TOKENS,
    )
    # Zero tokens billed: the row records the call (and refunds any TPM estimate), never a cost.
    call.usage = {"prompt_tokens": 0, "completion_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0}
    try:
        call.key = await request_authenticate(request)
        call.body = messages_count_tokens_validate(request_json_body(request))
        call.requested_model = call.body["model"]
        model = (await catalog_get()).resolve(call.body["model"])
        if model is None or not call.key.may_use(model.public_id):
            raise GatewayError(404, f"model: {call.body['model']}", code=ErrorCode.MODEL_NOT_FOUND, param="model")
        call.model = model
        # The rate limits apply here as on /messages (same 429), or a client could call it freely;
        # budgets do not: it costs nothing.
        await _admit(call, budgets=False)
        counted, source = await _count(call, model, request)
        call.status = 200
        call_meter(call)
        extra = {"x-gateway-token-count": source, **(call.rate_limits.headers(ANTHROPIC) if call.rate_limits else {})}
        return _json({"input_tokens": counted}, call.request_id, extra=extra)
    except asyncio.CancelledError:
        call.client_disconnected = True
        call.status = 499
        call.error_type = "client_disconnected"
        call_meter(call)
        raise
    except GatewayError as exc:
        call.status = exc.status
        call.error_type = exc.code or exc.anthropic_type()
        call_meter(call)
        return error_response(exc, ANTHROPIC, call.request_id)
    except Exception:
        logger.exception("count_tokens failed request_id=%s", call.request_id)
        call.status = 500
        call.error_type = "internal_error"
        call_meter(call)
        return error_response(
            GatewayError(500, f"Internal gateway error (request {call.request_id})."), ANTHROPIC, call.request_id
        )


async def _count(call: ProxyCall, model: ModelEntry, request: HttpRequest) -> tuple[int, str]:
    """The provider's count from the first Anthropic route that answers, else the estimate."""
    body = call.body
    for route in model.routes:
        if route.provider.kind != "anthropic" or not route.provider.secret():
            continue
        try:
            upstream = await upstream_send(
                route, dict(body, model=route.upstream_model), stream=False,
                client_headers=request.headers, path=COUNT_TOKENS_PATH,
            )
        except httpx.TransportError:
            continue
        if upstream.status_code == 200:
            try:
                counted = upstream.json()
                tokens = int(counted["input_tokens"])
            except (ValueError, KeyError, TypeError):
                continue  # a provider answering nonsense: fall back to the estimate
            call.route = route
            return tokens, "provider"
        if upstream.status_code in (400, 413, 422):
            # The client's request, as the provider judged it.
            call.route = route
            message = provider_error_message(upstream.status_code, upstream.content)
            raise GatewayError(upstream.status_code, f"The provider rejected the request: {message}")
        # 401/403 (the gateway's credentials), 404, 429, 5xx: not the client's doing.
    return tokens_for_request(body), "estimate"


def _model_json(m: ModelEntry) -> dict:
    created = datetime.fromtimestamp(m.created, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    return {"type": "model", "id": m.public_id, "display_name": m.display_name, "created_at": created}


async def anthropic_models(request: HttpRequest, model_id: str | None) -> HttpResponse:
    request_id = new_request_id()
    try:
        ctx = await request_authenticate(request)
        catalog = await catalog_get()
        if model_id is not None:
            model = catalog.resolve(model_id)
            if model is None or not ctx.may_use(model.public_id):
                raise GatewayError(404, f"model: {model_id}", code=ErrorCode.MODEL_NOT_FOUND)
            return _json(_model_json(model), request_id)
        data = [_model_json(m) for m in catalog.models.values() if ctx.may_use(m.public_id)]
        # has_more is always false: the SDK's auto-pagination would otherwise call again.
        return _json(
            {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
             "last_id": data[-1]["id"] if data else None},
            request_id,
        )
    except GatewayError as exc:
        return error_response(exc, ANTHROPIC, request_id)
