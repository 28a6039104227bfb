"""Anthropic-format side endpoint /v1/models (count_tokens is an operation: ai_proxy.operations)."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
from django.http import HttpRequest, HttpResponse

from catalog.models import CatalogModel
from catalog.selectors import ModelEntry, catalog_get
from core.errors import ANTHROPIC, ErrorCode, GatewayError, error_response, new_request_id, request_id_headers

from .proxy import request_authenticate


def _json(payload: dict, request_id: str, status: int = 200, extra: dict | None = None) -> HttpResponse:
    response = HttpResponse(orjson.dumps(payload), status=status, content_type="application/json")
    for name, value in {**request_id_headers(request_id), **(extra or {})}.items():
        response[name] = value
    return response


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
        # Only what Messages can serve: embedding models are for /embeddings (OpenAI's list has both).
        data = [_model_json(m) for m in catalog.models.values()
                if ctx.may_use(m.public_id) and m.model_type == CatalogModel.ModelType.CHAT]
        # has_more is always false: the SDK's auto-pagination would otherwise call again.
        return _json(
            {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
             "last_id": data[-1]["id"] if data else None},
            request_id,
        )
    except GatewayError as exc:
        return error_response(exc, ANTHROPIC, request_id)
