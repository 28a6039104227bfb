"""count_tokens' `serve` (operations.COUNT_TOKENS): the provider's own count from the first route
whose adapter counts natively (Anthropic), else the estimate (ai_proxy.tokens). The response says
which in `x-gateway-token-count`. It costs nothing upstream; the shared path has already applied
the key's and organization's rate limits, and meters a zero-cost row with endpoint `count_tokens`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import orjson
from django.http import HttpRequest, HttpResponse

from core.errors import GatewayError

from .providers import ADAPTERS
from .proxy import response_headers

if TYPE_CHECKING:
    from .call import ProxyCall


async def count_tokens_serve(call: "ProxyCall", request: HttpRequest) -> HttpResponse:
    counted, source = await _count(call, request)
    call.succeeded()
    response = HttpResponse(orjson.dumps({"input_tokens": counted}), content_type="application/json")
    for name, value in {**response_headers(call), "x-gateway-token-count": source}.items():
        response[name] = value
    return response


async def _count(call: "ProxyCall", request: HttpRequest) -> tuple[int, str]:
    for route in call.model.routes:
        adapter = ADAPTERS[route.provider.kind]
        try:
            tokens = await adapter.count_tokens(route, call.body, request.headers)
        except httpx.TransportError:
            continue
        except GatewayError:
            call.route = route  # the provider judged the client's request: the row names it
            raise
        if tokens is not None:
            call.route = route
            return tokens, "provider"
    return call.operation.input_tokens(call.body), "estimate"
