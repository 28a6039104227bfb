"""The provider adapters, one per `Provider.kind`, in one table.

    adapter_for(route.provider.kind).url(route.provider, "chat")

A kind without an adapter fails startup (`adapters_check`, called from AiProxyConfig.ready), so
a provider row can never silently get another kind's bodies. See base.py for the interface and
for how to add a provider.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured

from .anthropic import AnthropicAdapter
from .base import ANTHROPIC, OPENAI, ProviderAdapter, UnsupportedOperation
from .mock import MockAdapter
from .openai import OpenAIAdapter

if TYPE_CHECKING:
    from catalog.selectors import RouteEntry

ADAPTERS: dict[str, ProviderAdapter] = {
    "openai": OpenAIAdapter(),
    "anthropic": AnthropicAdapter(),
    "mock": MockAdapter(),
}


def adapter_for(kind: str) -> ProviderAdapter:
    """The adapter for a provider kind. The catalog snapshot leaves out routes of a kind with no
    adapter (a row written behind the admin's validation, or an adapter removed), so the proxy
    only ever asks for registered kinds."""
    return ADAPTERS[kind]


def route_dialect(route: "RouteEntry") -> str:
    """The wire dialect the route's provider speaks ("openai" or "anthropic")."""
    return ADAPTERS[route.provider.kind].dialect


def adapters_check(kinds: Iterable[str]) -> None:
    """Raise ImproperlyConfigured naming every provider kind that has no adapter."""
    missing = sorted(set(kinds) - set(ADAPTERS))
    if missing:
        raise ImproperlyConfigured(
            f"Provider kind(s) {', '.join(missing)} have no adapter: add ai_proxy/providers/<kind>.py "
            "and its line in ai_proxy.providers.ADAPTERS (see README, 'Adding a provider')."
        )


__all__ = [
    "ADAPTERS", "ANTHROPIC", "OPENAI", "ProviderAdapter", "UnsupportedOperation",
    "adapter_for", "adapters_check", "route_dialect",
]
