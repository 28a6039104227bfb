"""The vocabulary of `Route.allowed_options`: the price-changing client options an operator may
allow on a route, and the admin's check of what they typed.

It lives with the catalog because the Route model validates against it; the request-time checks
that refuse or bill those options are in ai_proxy.priced_options, which imports these names.
"""

from __future__ import annotations

import re

from .provider_kinds import kind_facts

WEB_SEARCH_OPTIONS = frozenset({"server_tool:web_search", "web_search_options"})
_ANTHROPIC_ONLY = ("anthropic-beta:", "server_tool:", "inference_geo:", "speed:", "cache_ttl:")
_OPTION_RE = re.compile(
    r"^(anthropic-beta:[A-Za-z0-9._-]+|service_tier:[a-z_]+|server_tool:(web_search|web_fetch)|web_search_options"
    r"|inference_geo:[a-z_-]+|speed:[a-z_-]+|cache_ttl:1h)$"
)


def allowed_options_parse(text: str) -> frozenset[str]:
    return frozenset(part for part in re.split(r"[\s,]+", text or "") if part)


def allowed_options_problems(text: str, *, provider_kind: str | None, web_search_priced: bool) -> list[str]:
    """What is wrong with a route's `allowed_options`, for the admin form (empty when fine)."""
    problems = []
    for name in sorted(allowed_options_parse(text)):
        if not _OPTION_RE.match(name):
            problems.append(f"`{name}` is not an option name the gateway knows (see the field's help).")
        elif name.startswith(_ANTHROPIC_ONLY) and provider_kind is not None and kind_facts(provider_kind).dialect != "anthropic":
            problems.append(f"`{name}` only applies to routes whose provider speaks the Anthropic format.")
        elif name in WEB_SEARCH_OPTIONS and not web_search_priced:
            problems.append(f"`{name}` needs the model's web search price (USD per 1,000 searches) set first.")
    return problems
