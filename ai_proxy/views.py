"""DRF views for the catalog and health. The hot proxy endpoints live in ai_proxy/proxy_views.py."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from catalog.selectors import ModelEntry, catalog_get_sync
from core.api_views import DATABASE_DOWN, UNAUTHENTICATED, ApiView, error_doc
from core.errors import ErrorCode, GatewayError, raise_for_drf

from .health import beat_status, cache_check, database_check, instance_draining, routes_cooling


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
        # chat | embedding: which endpoints serve it (embedding models: /embeddings only).
        "model_type": m.model_type,
        **({"dimensions": m.dimensions} if m.dimensions else {}),
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


def _ref(component: str) -> dict:
    return {"$ref": f"#/components/schemas/{component}"}  # ai_proxy.wire_schemas, added by ai_proxy.openapi


# Health bodies for the OpenAPI document (ai_proxy.openapi).
_STATUS_WORD = {"type": "object", "required": ["status", "timestamp"],
                "properties": {"status": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"}}}
_HEALTH = {
    "type": "object",
    "required": ["status", "database", "cache", "celery_beat", "providers", "timestamp"],
    "properties": {
        "status": {"enum": ["healthy", "unhealthy"]},
        "database": {"type": "string", "description": "`ok` or what failed."},
        "cache": {"type": "string", "description": "`ok` or what failed (Redis when configured)."},
        "routes_cooling_down": {"type": "array", "items": {"type": "object"}},
        "catalog": {"type": "string"},
        "celery_beat": {"type": "object", "required": ["status", "last_beat"], "properties": {
            "status": {"enum": ["ok", "stale", "unknown"]}, "last_beat": {"type": ["string", "null"]}}},
        "providers": {"type": "object", "additionalProperties": {"type": "string"},
                      "description": "Each provider in use: `ok` or `missing secret: set <VAR>`."},
        "timestamp": {"type": "string", "format": "date-time"},
    },
}


class ModelListApi(ApiView):
    """The catalog models this key may use: OpenAI's list format (`client.models.list()`) plus the
    provider, what each is best for, its speed and cost tiers, limits and prices."""

    @extend_schema(
        operation_id="models_list", tags=["OpenAI format"],
        summary="List the models this key may use (OpenAI list format, plus provider, tiers and prices)",
        responses={200: OpenApiResponse(_ref("ModelList"), description="The models."),
                   401: UNAUTHENTICATED, 503: DATABASE_DOWN},
    )
    def get(self, request):
        data = [model_openai_json(m) for m in visible_models(request.auth)]
        return Response({"object": "list", "data": data})


class ModelDetailApi(ApiView):
    """One model by id or alias, as in the list; 404 when it does not exist or this key may not use it."""

    @extend_schema(
        operation_id="models_retrieve", tags=["OpenAI format"], summary="One model this key may use",
        responses={200: OpenApiResponse(_ref("Model"), description="The model."), 401: UNAUTHENTICATED,
                   404: error_doc("No such model, or not visible to this key (`model_not_found`)."),
                   503: DATABASE_DOWN},
    )
    def get(self, request, model_id: str):
        model = catalog_get_sync().resolve(model_id)
        if model is None or not request.auth.may_use(model.public_id):
            raise_for_drf(
                GatewayError(
                    404,
                    f"The model `{model_id}` does not exist or you do not have access to it.",
                    code=ErrorCode.MODEL_NOT_FOUND,
                    param="model",
                )
            )
        return Response(model_openai_json(model))


class HealthApi(ApiView):
    """For load balancers and operators: 200 "healthy" when this instance can serve, else 503
    "unhealthy" (the database is down, or Redis is configured and unreachable). The detail also
    shows provider secrets, routes in cool-down and Celery's last beat (informative only)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health", tags=["Gateway"], summary="Health: database, cache, providers, Celery beat",
        responses={200: OpenApiResponse(_HEALTH, description="healthy"),
                   503: OpenApiResponse(_HEALTH, description="unhealthy: the database is down, or Redis is "
                                                             "configured and unreachable")},
    )
    def get(self, request):
        checks: dict[str, object] = {"database": database_check(), "cache": cache_check()}
        providers = {}
        if checks["database"] == "ok":
            try:
                catalog = catalog_get_sync()
                seen = {r.provider.name: r.provider for m in catalog.models.values() for r in m.routes}
                providers = {
                    name: ("ok" if not p.needs_secret or p.secret() else f"missing secret: set {p.api_key_env}")
                    for name, p in sorted(seen.items())
                }
                checks["routes_cooling_down"] = routes_cooling() if checks["cache"] == "ok" else []
            except Exception as exc:
                checks["catalog"] = f"error: {type(exc).__name__}"
        checks["celery_beat"] = beat_status() if checks["cache"] == "ok" else {"status": "unknown", "last_beat": None}
        healthy = checks["database"] == "ok" and checks["cache"] == "ok"
        body = {
            "status": "healthy" if healthy else "unhealthy",
            **checks,
            "providers": providers,
            "timestamp": timezone.now().isoformat(),
        }
        return Response(body, status=200 if healthy else 503)


class HealthLiveApi(ApiView):
    """Liveness: the process answers. No dependency is checked (a database outage must not get
    every instance restarted)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(operation_id="health_live", tags=["Gateway"], summary="Liveness: the process answers",
                   responses={200: OpenApiResponse(_STATUS_WORD, description="`alive`")})
    def get(self, request):
        return Response({"status": "alive", "timestamp": timezone.now().isoformat()})


class HealthReadyApi(ApiView):
    """Readiness: 200 "ready" when this instance should get new requests; 503 "draining" after
    SIGTERM (see ai_proxy.health), 503 "unavailable" when the database or Redis is down."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health_ready", tags=["Gateway"],
        summary="Readiness: whether this instance should get new requests",
        responses={200: OpenApiResponse(_STATUS_WORD, description="`ready`"),
                   503: OpenApiResponse(_STATUS_WORD, description="`draining` after SIGTERM, or `unavailable` when "
                                                                  "the database or Redis is down")},
    )
    def get(self, request):
        now = timezone.now().isoformat()
        if instance_draining():
            response = Response({"status": "draining", "timestamp": now}, status=503)
            response._has_been_logged = True  # expected while stopping: not an error line per poll
            return response
        checks = {"database": database_check(), "cache": cache_check()}
        ready = all(value == "ok" for value in checks.values())
        return Response({"status": "ready" if ready else "unavailable", **checks, "timestamp": now},
                        status=200 if ready else 503)
