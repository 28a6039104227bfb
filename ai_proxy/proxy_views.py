"""The hot endpoints, as plain async Django views.

Why not DRF here: DESIGN.md measured a bare adrf APIView at 850 requests/s against 1,000 for a
bare async Django view on this hardware, and the issue's floor is 900 with everything switched on.
Authentication is the same service the DRF class uses (orgs.selectors), and errors use the same
GatewayError rendering, so the two kinds of view behave alike to a client.

Each proxied endpoint is one line: `proxy_view(OPERATION)` hands its operation to the shared path
(ai_proxy.proxy.proxy_handle); what the endpoint is lives in ai_proxy.operations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from core.errors import ANTHROPIC, OPENAI, ErrorCode, GatewayError, error_response, new_request_id

from .anthropic_extras import anthropic_models
from .operations import CHAT_COMPLETIONS, COUNT_TOKENS, EMBEDDINGS, MESSAGES, RESPONSES, Operation
from .proxy import proxy_handle


def _method_not_allowed(request: HttpRequest, fmt: str, allowed: str) -> HttpResponse:
    response = error_response(
        GatewayError(
            405, f"Method {request.method} is not allowed here; use {allowed}.", code=ErrorCode.METHOD_NOT_ALLOWED
        ),
        fmt,
        new_request_id(),
    )
    response["allow"] = allowed
    return response


def proxy_view(operation: Operation) -> Callable[[HttpRequest], Awaitable[HttpResponse]]:
    """The view for a proxied operation: POST only, everything else on the shared path."""

    @csrf_exempt
    async def view(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return _method_not_allowed(request, operation.error_format, "POST")
        return await proxy_handle(request, operation)

    view.__name__ = view.__qualname__ = f"proxy_{operation.name}"
    view.operation = operation  # the OpenAPI document finds the routed operations by it (ai_proxy.openapi)
    return view


chat_completions = proxy_view(CHAT_COMPLETIONS)
anthropic_messages = proxy_view(MESSAGES)
anthropic_messages_count_tokens = proxy_view(COUNT_TOKENS)
embeddings = proxy_view(EMBEDDINGS)
responses = proxy_view(RESPONSES)


async def anthropic_models_list(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _method_not_allowed(request, ANTHROPIC, "GET")
    return await anthropic_models(request, None)


async def anthropic_model_detail(request: HttpRequest, model_id: str) -> HttpResponse:
    if request.method != "GET":
        return _method_not_allowed(request, ANTHROPIC, "GET")
    return await anthropic_models(request, model_id)


async def not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    """Any other path under /api/ai/: a JSON 404 in the family's format, never Django's HTML page."""
    fmt = ANTHROPIC if request.path.startswith("/api/ai/anthropic/") else OPENAI
    hint = ""
    if request.path.endswith("/"):
        hint = " Paths take no trailing slash."
    return error_response(
        GatewayError(404, f"No endpoint {request.method} {request.path}.{hint}", code=ErrorCode.NOT_FOUND),
        fmt,
        new_request_id(),
    )
