"""Anthropic-format side endpoints: /v1/messages/count_tokens and /v1/models.

count_tokens is native on Anthropic routes (the provider counts) and an estimate elsewhere
(ai_proxy.tokens; the response says which in `x-gateway-token-count`). It costs nothing upstream,
so it leaves no ledger row.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import httpx
import orjson
from django.http import HttpRequest, HttpResponse

from .catalog import ModelEntry, catalog_get
from .errors import ANTHROPIC, GatewayError, error_response, new_request_id, request_id_headers
from .messages_format import messages_count_tokens_validate
from .proxy import request_authenticate, request_json_body
from .tokens import tokens_for_request
from .upstream import COUNT_TOKENS_PATH, provider_error_message, upstream_send

logger = logging.getLogger(__name__)


def _json(payload: dict, request_id: str, status: int = 200, extra: dict | None = None) -> HttpResponse:
    response = HttpResponse(orjson.dumps(payload), status=status, content_type="application/json")
    for name, value in {**request_id_headers(request_id), **(extra or {})}.items():
        response[name] = value
    return response


async def anthropic_count_tokens(request: HttpRequest) -> HttpResponse:
    request_id = new_request_id()
    try:
        ctx = await request_authenticate(request)
        body = messages_count_tokens_validate(request_json_body(request))
        model = (await catalog_get()).resolve(body["model"])
        if model is None or not ctx.may_use(model.public_id):
            raise GatewayError(404, f"model: {body['model']}", code="model_not_found", param="model")
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
                return _json({"input_tokens": tokens}, request_id, extra={"x-gateway-token-count": "provider"})
            if upstream.status_code in (400, 413, 422):
                # The client's request, as the provider judged it.
                message = provider_error_message(upstream.status_code, upstream.content)
                raise GatewayError(upstream.status_code, f"The provider rejected the request: {message}")
            # 401/403 (the gateway's credentials), 404, 429, 5xx: not the client's doing.
        estimate = tokens_for_request(body)
        return _json({"input_tokens": estimate}, request_id, extra={"x-gateway-token-count": "estimate"})
    except GatewayError as exc:
        return error_response(exc, ANTHROPIC, request_id)
    except Exception:
        logger.exception("count_tokens failed request_id=%s", request_id)
        return error_response(GatewayError(500, f"Internal gateway error (request {request_id})."), ANTHROPIC, request_id)


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
                raise GatewayError(404, f"model: {model_id}", code="model_not_found")
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
