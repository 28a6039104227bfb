"""The OpenAPI 3.1 document of every /api/ai/ endpoint, and the two public views that serve it.

drf-spectacular describes the DRF views (catalog, usage, health, the staff usage API) from their
`extend_schema` annotations. The hot endpoints are plain async views it cannot see, so
`schema_complete` (a drf-spectacular post-processing hook) adds them from the URLconf: every url
routed to a `proxy_view(OPERATION)` is documented from that operation's descriptor
(ai_proxy.operations): its `doc` names the wire schemas (ai_proxy.wire_schemas) of its request,
response and stream events, and its error format, streaming, billing and `serve` decide the
statuses, headers and error bodies, the same way for every operation. A new operation appears with
its url line and its `doc`; one without a `doc` is left out and fails tests/test_openapi.py.

GET /api/ai/openapi.json and GET /api/ai/docs/ (Swagger UI, its assets from the
drf-spectacular-sidecar package via the static files: no CDN) need no key, like the docs of peers.
The document is built once per process: it only changes with the code.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.urls.exceptions import Resolver404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.views import SpectacularSwaggerView

from core.errors import ANTHROPIC, OPENAI, ErrorCode, GatewayError, error_response, new_request_id

from .operations import Operation
from .wire_schemas import COMPONENTS, REQUEST_EXAMPLES, ref

logger = logging.getLogger(__name__)

API_PREFIX = "/api/ai/"
OPENAI_TAG, ANTHROPIC_TAG, GATEWAY_TAG = "OpenAI format", "Anthropic format", "Gateway"


_MODEL_ID_PARAMETER = {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"},
                       "description": "A catalog model id or alias."}
_KEY_SECURITY = [{"BearerAuth": []}, {"ApiKeyAuth": []}]

SECURITY_SCHEMES = {
    "BearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "dm_<org>_<env>_<secret>",
                   "description": "An organization's API key (`Authorization: Bearer dm_...`), as the openai SDK "
                                  "sends it."},
    "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key",
                   "description": "The same key as `x-api-key: dm_...`, as the anthropic SDK sends it. Either header "
                                  "works on every route."},
    "StaffToken": {"type": "http", "scheme": "bearer", "bearerFormat": "dms_...",
                   "description": "A staff token (`manage.py issue_staff_token`), for the staff usage API only."},
    "AdminSession": {"type": "apiKey", "in": "cookie", "name": "sessionid",
                     "description": "The admin's session cookie of a staff user (staff usage API only)."},
}

_HEADERS = {
    "RequestId": {"description": "The request's id (the openai SDK's `request_id`); in the ledger too.",
                  "schema": {"type": "string"}},
    "AnthropicRequestId": {"description": "The same id (the anthropic SDK's `request_id`).",
                           "schema": {"type": "string"}},
    "GatewayModel": {"description": "The catalog model that answered (an alias resolved).",
                     "schema": {"type": "string"}},
    "GatewayProvider": {"description": "The provider of the route that answered.", "schema": {"type": "string"}},
    "GatewayCost": {"description": "What the request cost in USD, exact decimal (non-streaming answers).",
                    "schema": {"type": "string", "pattern": r"^\d+(\.\d+)?$"}},
    "RetryAfter": {"description": "Seconds to wait before retrying (at most 60).",
                   "schema": {"type": "string", "pattern": r"^\d+$"}},
    "ShouldRetry": {"description": "`false`: retrying cannot help until the operator acts (budget, hard limit); "
                                   "`true`: a passing outage, retry. Both SDKs obey it.",
                    "schema": {"enum": ["true", "false"]}},
}
for _family, _names in ((OPENAI, ("x-ratelimit-limit-{k}", "x-ratelimit-remaining-{k}", "x-ratelimit-reset-{k}")),
                        (ANTHROPIC, ("anthropic-ratelimit-{k}-limit", "anthropic-ratelimit-{k}-remaining",
                                     "anthropic-ratelimit-{k}-reset"))):
    for _kind in ("requests", "tokens"):
        for _name in _names:
            _HEADERS[_name.format(k=_kind)] = {
                "description": f"The tightest {_kind}-per-minute limit of the key and its organization, when one is "
                               "set (the reset is " + ("`<n>s`" if _family == OPENAI else "an RFC 3339 time") + ").",
                "schema": {"type": "string"}}


def _header_ref(name: str) -> dict:
    return {"$ref": f"#/components/headers/{name}"}


def _ratelimit_headers(fmt: str) -> dict[str, dict]:
    prefix = "x-ratelimit-" if fmt == OPENAI else "anthropic-ratelimit-"
    return {name: _header_ref(name) for name in _HEADERS if name.startswith(prefix)}


def _id_headers() -> dict[str, dict]:
    return {"x-request-id": _header_ref("RequestId"), "request-id": _header_ref("AnthropicRequestId")}


def _error_component(fmt: str) -> str:
    return "AnthropicError" if fmt == ANTHROPIC else "OpenAIError"


_ERROR_TEXT = {
    400: "The request is invalid: the body is not JSON, a field is wrong (`param` names it), a priced option the "
         "route does not allow, or the wrong Content-Type.",
    401: "No API key, or a key that is unknown, revoked, expired or belongs to another vanity domain.",
    403: "The key may not use this model.",
    404: "No such model (or not visible to this key).",
    413: "The body is larger than GATEWAY_MAX_BODY_BYTES.",
    429: "A rate limit (`rate_limit_exceeded`, with the rate-limit headers), a hard budget (`budget_exceeded`, "
         "`x-should-retry: false`), or every provider rate-limiting the gateway (`upstream_rate_limited`).",
    502: "Every route of the model failed (connection, timeout or provider 5xx): `upstream_unavailable`.",
    503: "Budgets cannot be checked while Redis is unreachable (`budget_unavailable`, `x-should-retry: true`), the "
         "model has no price, or no route can serve it (every provider disabled or missing its secret).",
}
_ERROR_HEADERS = {
    429: lambda fmt: {"retry-after": _header_ref("RetryAfter"), "x-should-retry": _header_ref("ShouldRetry"),
                      **_ratelimit_headers(fmt)},
    503: lambda fmt: {"retry-after": _header_ref("RetryAfter"), "x-should-retry": _header_ref("ShouldRetry")},
}


def _error_ref(fmt: str, status: int | str, text: str | None = None) -> dict:
    headers = {**_id_headers(), **(_ERROR_HEADERS[status](fmt) if status in _ERROR_HEADERS else {})}
    return {"description": text or _ERROR_TEXT[status], "headers": headers,
            "content": {"application/json": {"schema": ref(_error_component(fmt))}}}


def _json_ok(schema: dict, description: str, headers: dict | None = None) -> dict:
    return {"description": description, "headers": {**_id_headers(), **(headers or {})},
            "content": {"application/json": {"schema": schema}}}


# Plain (non-DRF) views that are not proxy operations: the catalog in Anthropic's list format.
def _anthropic_models_paths() -> dict[str, dict]:
    errors = {"401": _error_ref(ANTHROPIC, 401)}
    return {
        "anthropic/v1/models": {"get": {
            "operationId": "anthropic_models_list", "tags": [ANTHROPIC_TAG],
            "summary": "List the models this key may use (Anthropic's list format)",
            "security": _KEY_SECURITY,
            "responses": {"200": _json_ok(ref("AnthropicModelList"), "The catalog, as `anthropic` SDK "
                                                                     "`models.list()` reads it."), **errors},
        }},
        "anthropic/v1/models/{model_id}": {"get": {
            "operationId": "anthropic_models_retrieve", "tags": [ANTHROPIC_TAG],
            "summary": "One model this key may use (Anthropic format)",
            "security": _KEY_SECURITY,
            "parameters": [_MODEL_ID_PARAMETER],
            "responses": {"200": _json_ok(ref("AnthropicModel"), "The model."), **errors,
                          "404": _error_ref(ANTHROPIC, 404)},
        }},
    }


def routed_operations() -> list[tuple[str, Operation]]:
    """(path under /api/ai/, operation) for every url routed to a proxied operation's view
    (ai_proxy.proxy_views.proxy_view marks it), in URLconf order: an operation's first url is its
    canonical one, the others aliases."""
    found: list[tuple[str, Operation]] = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and isinstance(getattr(pattern.callback, "operation", None),
                                                                  Operation):
                found.append((route, pattern.callback.operation))

    walk(get_resolver().url_patterns, "")
    prefix = API_PREFIX.lstrip("/")
    return [(route[len(prefix):], op) for route, op in found if route.startswith(prefix)]


def operation_doc_problems() -> list[str]:
    """What keeps a routed operation out of the document, as instructions to fix it."""
    problems = {}
    for path, op in routed_operations():
        problem = _doc_problem(op, path)
        if problem:
            problems.setdefault(id(op), problem)
    return list(problems.values())


def _doc_problem(op: Operation, path: str) -> str | None:
    name = _operation_id(op)
    if op.doc is None:
        return (f"Operation {name!r} is served at {API_PREFIX}{path} but has no `doc`: give its descriptor in "
                "ai_proxy/operations.py `doc=OperationDoc(summary=..., request=..., response=..., "
                "stream_event=...)` naming its schemas in ai_proxy/wire_schemas.py COMPONENTS (add them there if "
                "missing).")
    names = (op.doc.request, op.doc.response, op.doc.stream_event if op.may_stream else "")
    missing = [component for component in names if component and component not in COMPONENTS]
    if missing:
        return (f"Operation {name!r} names schemas {missing} that ai_proxy/wire_schemas.py does not define: add "
                "them to COMPONENTS there.")
    if op.may_stream and not op.doc.stream_event:
        return (f"Operation {name!r} may stream but its doc names no stream_event schema: add one (the data of "
                "one Server-Sent Event) to its OperationDoc.")
    return None


def _operation_id(op: Operation) -> str:
    return _slug(op.label)  # "chat completions" -> chat_completions


def _statuses(op: Operation) -> tuple[int, ...]:
    """The error statuses the shared request path (ai_proxy.proxy) can answer for this operation."""
    statuses = [400, 401, 403, 404, 413, 429]  # body, key, model access, model, size, limits/budgets
    if op.serve is None:
        statuses.append(502)  # every route failed
    if op.serve is None or op.billed:
        statuses.append(503)  # no route can serve, no price, budgets unreadable
    return tuple(statuses)


def operation_paths(op: Operation, paths: list[str]) -> dict[str, dict]:
    """The document's path items for one routed operation: each of its urls gets its own
    operationId (the aliases are equally supported, not deprecated)."""
    doc = op.doc
    stream_event = doc.stream_event if op.may_stream else ""
    ok_headers = {"x-gateway-model": _header_ref("GatewayModel"), "x-gateway-provider": _header_ref("GatewayProvider"),
                  **_ratelimit_headers(op.error_format)}
    if op.billed:
        ok_headers["x-gateway-cost-usd"] = _header_ref("GatewayCost")
    ok_headers.update(doc.headers)
    content: dict[str, Any] = {"application/json": {"schema": ref(doc.response)}}
    if stream_event:
        content["text/event-stream"] = {"schema": sse_event_schema(op.error_format, stream_event)}
    success = "Success." + (" JSON, or Server-Sent Events with `stream: true`." if stream_event else "")
    responses: dict[str, Any] = {"200": {"description": success, "headers": {**_id_headers(), **ok_headers},
                                         "content": content}}
    for status in _statuses(op):
        responses[str(status)] = _error_ref(op.error_format, status)
    # A provider's own 4xx for the client's request is passed on with its status.
    responses["4XX"] = _error_ref(op.error_format, "4XX", "The provider rejected the request (its status and "
                                                          "message passed on, `upstream_invalid_request`).")
    tag = ANTHROPIC_TAG if op.error_format == ANTHROPIC else OPENAI_TAG
    items = {}
    for i, path in enumerate(paths):
        body = {"required": True, "content": {"application/json": {"schema": ref(doc.request)}}}
        if doc.request in REQUEST_EXAMPLES:
            body["content"]["application/json"]["examples"] = REQUEST_EXAMPLES[doc.request]
        items[path] = {"post": {
            "operationId": _operation_id(op) if i == 0 else f"{_operation_id(op)}_{_slug(path)}",
            "summary": doc.summary if i == 0 else f"{doc.summary} (alias of {API_PREFIX}{paths[0]})",
            "description": doc.description,
            "tags": [tag],
            "security": _KEY_SECURITY,
            "requestBody": body,
            "responses": responses,
        }}
    return items


def sse_event_schema(error_format: str, stream_event: str) -> dict:
    """One Server-Sent Event of an operation's stream, as OpenAPI before 3.2 describes an event
    stream: `schema` is each event ({event, data, id, retry}), its `data` JSON text whose schema is
    `contentSchema` (schemathesis validates every event of a live stream against it)."""
    data = {"type": "string", "contentMediaType": "application/json",
            "contentSchema": {"anyOf": [ref(stream_event), ref(_error_component(error_format))]}}
    if error_format == OPENAI:
        # OpenAI streams may end with `data: [DONE]`, the one data line that is not JSON.
        data = {"anyOf": [{"const": "[DONE]"}, data]}
        event = {"type": "string"}
    else:
        event = {"type": "string", "description": "The same name as the data's `type`."}
    return {
        "type": "object",
        "description": f"Server-Sent Events, one per `data:` line; each data is a {stream_event}"
                       + (" and a chat stream ends with `data: [DONE]`." if error_format == OPENAI else "."),
        "required": ["data"],
        "properties": {"event": event, "data": data, "id": {"type": "string"}, "retry": {"type": "integer"}},
    }


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")


def _served(path: str) -> bool:
    """Whether Django routes this /api/ai/ path to a real view (not the JSON 404 catch-all)."""
    from .proxy_views import not_found

    concrete = re.sub(r"\{[^}]+\}", "x", API_PREFIX + path)
    try:
        return resolve(concrete).func is not not_found
    except Resolver404:
        return False


def hot_paths() -> dict[str, dict]:
    """Path items of every routed operation and of the plain catalog views, keyed by the full path."""
    by_operation: dict[int, tuple[Operation, list[str]]] = {}
    for path, op in routed_operations():
        by_operation.setdefault(id(op), (op, []))[1].append(path)
    out: dict[str, dict] = {}
    for op, paths in by_operation.values():
        problem = _doc_problem(op, paths[0])
        if problem:
            logger.error("OpenAPI document: %s", problem)  # tests/test_openapi.py fails on the same
            continue
        for path, item in operation_paths(op, paths).items():
            out[API_PREFIX + path] = item
    for path, item in _anthropic_models_paths().items():
        if _served(path):
            out[API_PREFIX + path] = item
    return out


# --- drf-spectacular hooks and extensions ----------------------------------------------------


def endpoints_under_api(endpoints: list, **kwargs) -> list:
    """Pre-processing hook: only /api/ai/ is documented (not the admin, dashboards or the docs themselves)."""
    return [e for e in endpoints if e[0].startswith(API_PREFIX) and not e[0].startswith(API_PREFIX + "docs")
            and e[0] != API_PREFIX + "openapi.json"]


def schema_complete(result: dict, generator, request, public) -> dict:
    """Post-processing hook: the hot operations' paths, the wire components, headers and security schemes."""
    for item in result.get("paths", {}).values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                # Every /api/ai/ answer carries its request id (core.api_views.ApiView).
                response["headers"] = {**_id_headers(), **response.get("headers", {})}
    result.setdefault("paths", {}).update(hot_paths())
    result["paths"] = dict(sorted(result["paths"].items()))
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(COMPONENTS)
    components["schemas"] = dict(sorted(components["schemas"].items()))
    components.setdefault("headers", {}).update(_HEADERS)
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    result["tags"] = [
        {"name": OPENAI_TAG, "description": "`OpenAI(base_url=\"https://<host>/api/ai\", api_key=\"dm_...\")`"},
        {"name": ANTHROPIC_TAG, "description": "`Anthropic(base_url=\"https://<host>/api/ai/anthropic\", "
                                               "api_key=\"dm_...\")`"},
        {"name": GATEWAY_TAG, "description": "Usage, health and the staff usage API."},
    ]
    return result


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "orgs.authentication.ApiKeyAuthentication"
    name = ["BearerAuth", "ApiKeyAuth"]

    def get_security_requirement(self, auto_schema):
        return [{"BearerAuth": []}, {"ApiKeyAuth": []}]  # either header

    def get_security_definition(self, auto_schema):
        return [SECURITY_SCHEMES["BearerAuth"], SECURITY_SCHEMES["ApiKeyAuth"]]


class StaffTokenScheme(OpenApiAuthenticationExtension):
    target_class = "billing.admin_usage_api.StaffTokenAuthentication"
    name = "StaffToken"

    def get_security_definition(self, auto_schema):
        return SECURITY_SCHEMES["StaffToken"]


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = "billing.admin_usage_api.StaffSessionAuthentication"
    name = "AdminSession"

    def get_security_definition(self, auto_schema):
        return SECURITY_SCHEMES["AdminSession"]


# --- the views -------------------------------------------------------------------------------

_document: list[bytes] = []
_document_lock = threading.Lock()


def openapi_document() -> dict:
    """The whole document, generated now (tests; the view caches the bytes)."""
    return SchemaGenerator().get_schema(request=None, public=True)


def openapi_json(request: HttpRequest) -> HttpResponse:
    """GET /api/ai/openapi.json: public; built once per process (a sync view: generation imports and
    walks every view, so it runs in a worker thread, off the event loop)."""
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed(request)
    if not _document:
        with _document_lock:
            if not _document:
                _document.append(orjson.dumps(openapi_document()))
    response = HttpResponse(_document[0], content_type="application/json")
    response["cache-control"] = "public, max-age=300"
    return response


def _method_not_allowed(request: HttpRequest) -> HttpResponse:
    response = error_response(GatewayError(405, f"Method {request.method} is not allowed here; use GET.",
                                           code=ErrorCode.METHOD_NOT_ALLOWED), OPENAI, new_request_id())
    response["allow"] = "GET, HEAD"
    return response


class SwaggerDocsView(SpectacularSwaggerView):
    """GET /api/ai/docs/: Swagger UI over /api/ai/openapi.json, assets served from this gateway."""

    url_name = "openapi-json"
    authentication_classes: list = []

    def http_method_not_allowed(self, request, *args, **kwargs):
        # The API's JSON 405, not DRF's plain-text fallback for an HTML renderer.
        return _method_not_allowed(request)


def docs_redirect(request: HttpRequest) -> HttpResponse:
    """/api/ai/docs without the slash: the lean API handler has no APPEND_SLASH middleware."""
    return HttpResponseRedirect(reverse("openapi-docs"))
