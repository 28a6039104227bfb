"""Anthropic's Messages API: `x-api-key` auth, `anthropic-version` (the client's, when an
Anthropic-format client sent one, else ours), `anthropic-beta` passed on (priced_options has
already checked it), and native token counting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import GatewayError

from ..usage import usage_from_anthropic
from .base import ANTHROPIC, ProviderAdapter

if TYPE_CHECKING:
    from catalog.selectors import ProviderEntry, RouteEntry

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicAdapter(ProviderAdapter):
    kind = "anthropic"
    label = "Anthropic Messages"
    dialect = ANTHROPIC
    paths = {"messages": "/v1/messages", "count_tokens": "/v1/messages/count_tokens"}

    def headers(self, provider: "ProviderEntry", body: bytes, client_headers: Any = None) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        secret = provider.secret()
        if secret:
            headers["x-api-key"] = secret
        version = client_headers.get("anthropic-version") if client_headers is not None else None
        headers["anthropic-version"] = version or ANTHROPIC_VERSION
        beta = client_headers.get("anthropic-beta") if client_headers is not None else None
        if beta:
            headers["anthropic-beta"] = beta
        return headers

    def usage(self, data: dict) -> dict | None:
        usage = data.get("usage")
        return usage_from_anthropic(usage) if usage and isinstance(usage, dict) else None

    async def count_tokens(self, route: "RouteEntry", body: dict, client_headers: Any) -> int | None:
        if not route.provider.secret():
            return None  # no credentials: the estimate answers instead of a certain 401
        from ..upstream import provider_error_message, upstream_send

        upstream = await upstream_send(
            route, dict(body, model=route.upstream_model), stream=False,
            client_headers=client_headers, path_key="count_tokens",
        )
        if upstream.status_code == 200:
            try:
                return int(upstream.json()["input_tokens"])
            except (ValueError, KeyError, TypeError):
                return None  # a provider answering nonsense: the next route, or the estimate
        if upstream.status_code in (400, 413, 422):
            # The client's request, as the provider judged it.
            message = provider_error_message(upstream.status_code, upstream.content)
            raise GatewayError(upstream.status_code, f"The provider rejected the request: {message}")
        # 401/403 (the gateway's credentials), 404, 429, 5xx: not the client's doing.
        return None

