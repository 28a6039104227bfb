"""DRF views for the catalog and health. The hot proxy endpoints live in ai_proxy/proxy_views.py."""

from __future__ import annotations

from django.db import connection
from django.utils import timezone
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from gateway_site.api_views import ApiView

from gateway_site.shared_state import STATE_ERRORS, shared_state, state_outage

from .catalog import ModelEntry, catalog_get_sync
from .errors import GatewayError, raise_for_drf


def _price(value) -> str | None:
    return None if value is None else str(value)


def model_openai_json(m: ModelEntry) -> dict:
    return {
        "id": m.public_id,
        "object": "model",
        "created": m.created,
        "owned_by": m.provider_label.lower(),
        "display_name": m.display_name,
        "provider": m.provider_label,
        "best_for": m.best_for,
        "speed": m.speed_tier,
        "cost_tier": m.cost_tier,
        "max_output_tokens": m.max_output_tokens,
        "context_window": m.context_window,
        "pricing": {
            "currency": "USD",
            "unit": "per_million_tokens",
            "input": _price(m.input_price),
            "output": _price(m.output_price),
            "cache_read": _price(m.cache_read_price),
            "cache_write": _price(m.cache_write_price),
        },
    }


def visible_models(ctx) -> list[ModelEntry]:
    catalog = catalog_get_sync()
    return [m for m in catalog.models.values() if ctx.may_use(m.public_id)]


class ModelListApi(ApiView):
    def get(self, request):
        data = [model_openai_json(m) for m in visible_models(request.auth)]
        return Response({"object": "list", "data": data})


class ModelDetailApi(ApiView):
    def get(self, request, model_id: str):
        model = catalog_get_sync().resolve(model_id)
        if model is None or not request.auth.may_use(model.public_id):
            raise_for_drf(
                GatewayError(
                    404,
                    f"The model `{model_id}` does not exist or you do not have access to it.",
                    code="model_not_found",
                    param="model",
                )
            )
        return Response(model_openai_json(model))


class HealthApi(ApiView):
    """For load balancers: 200 "healthy" when this instance can serve, else 503 "unhealthy"
    (the database is down, or Redis is configured and unreachable)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        checks: dict[str, object] = {}
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            checks["database"] = "ok"
        except Exception as exc:  # any driver error means "down" here
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            shared_state().ping_sync()
            checks["cache"] = "ok"
            state_outage.succeeded()
        except Exception as exc:
            checks["cache"] = f"error: {type(exc).__name__}"
            if isinstance(exc, STATE_ERRORS):
                state_outage.failed(exc, "answering a health check")
        providers = {}
        if checks["database"] == "ok":
            try:
                catalog = catalog_get_sync()
                seen = {r.provider.name: r.provider for m in catalog.models.values() for r in m.routes}
                providers = {
                    name: ("ok" if not p.needs_secret or p.secret() else f"missing secret: set {p.api_key_env}")
                    for name, p in sorted(seen.items())
                }
            except Exception as exc:
                checks["catalog"] = f"error: {type(exc).__name__}"
        healthy = checks["database"] == "ok" and checks["cache"] == "ok"
        body = {
            "status": "healthy" if healthy else "unhealthy",
            **checks,
            "providers": providers,
            "timestamp": timezone.now().isoformat(),
        }
        return Response(body, status=200 if healthy else 503)
