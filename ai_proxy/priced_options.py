"""Client options that change what the provider charges, and which routes may take them.

A client can make one request cost more than its tokens at list price: a beta header
(`context-1m-...` bills long prompts at a premium), `service_tier: "priority"`, a server tool
billed per use (`web_search` with `max_uses: 50`), US-only inference, fast mode, one-hour cache
writes. Each such option is refused with a 400 naming it unless the route lists it in
`Route.allowed_options` (the operator's decision, per route, because routes differ). Failover
still works: routes that do not allow an option are skipped, and a request whose options no
route allows is refused before any provider is called.

Where the provider reports per-use charges, an allowed option is billed exactly: web searches at
the model's `web_search_price_per_1k` (Anthropic reports `usage.server_tool_use.
web_search_requests`; OpenAI-format search runs one search per request), so web search can only
be allowed on a model with that price. A service tier is billed at the catalog model's prices:
an operator who allows `service_tier:priority` gives it a catalog model priced at the tier.

Option names, as the operator writes them:
- `anthropic-beta:<value>`: a beta header value, forwarded only to native Anthropic routes. The
  prompt-caching beta is always allowed (its cache reads and writes are priced exactly).
- `service_tier:<value>` (OpenAI format; `auto` and `default` are the standard price).
- `server_tool:web_search`, `server_tool:web_fetch` (Anthropic server tools), `web_search_options`
  (OpenAI format). Server tools the gateway cannot meter (code execution is billed per container
  hour, which no response reports) are refused on every route.
- `inference_geo:<value>`, `speed:<value>`, `cache_ttl:1h` (Anthropic).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from catalog.route_options import WEB_SEARCH_OPTIONS
from core.errors import ANTHROPIC, OPENAI, ErrorCode, GatewayError

from .providers import ADAPTERS

# Versions of the Messages API the gateway's parsing and metering understand.
ANTHROPIC_VERSIONS = ("2026-10-21", "2023-06-01", "2023-01-01")
# Betas whose charges the ledger already prices exactly (cache read and write tokens).
DEFAULT_BETAS = frozenset({"prompt-caching-2024-07-31"})
# Anthropic-defined tools the client executes itself: they cost their tokens, nothing more.
CLIENT_EXECUTED_TOOLS = frozenset({"bash", "text_editor", "computer", "memory"})
# Server tools the ledger can price: web_search per search, web_fetch at tokens only.
METERED_SERVER_TOOLS = frozenset({"web_search", "web_fetch"})
# Values that are the standard price whatever the route.
_STANDARD = {"service_tier": (None, "auto", "default"), "inference_geo": (None, "global"), "speed": (None, "standard")}

_TOOL_VERSION_RE = re.compile(r"_\d{8}$")


@dataclass(frozen=True)
class PricedOption:
    name: str  # as the operator lists it, e.g. "service_tier:priority"
    param: str  # where the client set it: a header name or a JSON path
    dialect: str  # the upstream dialect it reaches; other dialects drop or refuse it in translation
    foreign_refused: bool = False  # True: a route of the other dialect cannot take it at all


def anthropic_headers_check(headers: Any, client_format: str) -> None:
    """Refuse Anthropic headers the gateway cannot forward as they are (400 naming the header)."""
    if client_format == OPENAI:
        if headers.get("anthropic-beta"):
            raise GatewayError(
                400,
                "The `anthropic-beta` header is not accepted on /chat/completions: beta features are only "
                "forwarded on the Anthropic Messages endpoint (/api/ai/anthropic/v1/messages), to routes that allow them.",
                param="anthropic-beta",
                code=ErrorCode.UNSUPPORTED_HEADER,
            )
        return  # anthropic-version on /chat/completions: never forwarded, the gateway sends its own
    version = headers.get("anthropic-version")
    if version is not None and version not in ANTHROPIC_VERSIONS:
        raise GatewayError(
            400,
            f"anthropic-version: `{version}` is not a version this gateway accepts; "
            f"use one of {', '.join(ANTHROPIC_VERSIONS)}.",
            param="anthropic-version",
            code=ErrorCode.INVALID_REQUEST_ERROR,
        )


def priced_options_requested(body: dict, headers: Any, client_format: str) -> tuple[PricedOption, ...]:
    """The price-changing options in a validated request. Raises 400 for ones no route can take."""
    anthropic_headers_check(headers, client_format)
    if client_format == OPENAI:
        return tuple(_openai_options(body))
    return tuple(_anthropic_options(body, headers))


def _openai_options(body: dict) -> Iterable[PricedOption]:
    tier = body.get("service_tier")
    if tier not in _STANDARD["service_tier"]:
        yield PricedOption(f"service_tier:{tier}", "service_tier", OPENAI)
    if body.get("web_search_options") is not None:
        yield PricedOption("web_search_options", "web_search_options", OPENAI)


def _anthropic_options(body: dict, headers: Any) -> Iterable[PricedOption]:
    for value in (headers.get("anthropic-beta") or "").split(","):
        value = value.strip()
        if value and value not in DEFAULT_BETAS:
            yield PricedOption(f"anthropic-beta:{value}", "anthropic-beta", ANTHROPIC, foreign_refused=True)
    for i, tool in enumerate(body.get("tools") or []):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind in (None, "custom") or not isinstance(kind, str):
            continue
        base = _TOOL_VERSION_RE.sub("", kind)
        if base in CLIENT_EXECUTED_TOOLS:
            continue
        if base not in METERED_SERVER_TOOLS:
            raise GatewayError(
                400,
                f"tools[{i}].type: the server tool `{kind}` is billed by the provider in a way this gateway "
                "cannot meter, so it is not available through the gateway.",
                param=f"tools[{i}].type",
                code=ErrorCode.UNSUPPORTED_PARAMETER,
            )
        yield PricedOption(f"server_tool:{base}", f"tools[{i}]", ANTHROPIC)
    for key in ("inference_geo", "speed"):
        value = body.get(key)
        if value not in _STANDARD[key]:
            yield PricedOption(f"{key}:{value}", key, ANTHROPIC)
    path = _one_hour_cache_path(body)
    if path is not None:
        yield PricedOption("cache_ttl:1h", path, ANTHROPIC)


def _one_hour_cache_path(body: dict) -> str | None:
    """Where the first one-hour cache breakpoint is (they are written at a higher price than 5-minute ones)."""
    places: list[tuple[str, Any]] = [("cache_control", body.get("cache_control"))]
    for key in ("system", "tools"):
        if isinstance(body.get(key), list):
            places += [(f"{key}[{i}].cache_control", b.get("cache_control"))
                       for i, b in enumerate(body[key]) if isinstance(b, dict)]
    for i, message in enumerate(body.get("messages") or []):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            places += [(f"messages[{i}].content[{j}].cache_control", b.get("cache_control"))
                       for j, b in enumerate(content) if isinstance(b, dict)]
    for path, control in places:
        if isinstance(control, dict) and control.get("ttl") == "1h":
            return path
    return None


def _dialect(kind: str) -> str | None:
    """The wire dialect of a provider kind (None for a kind with no adapter)."""
    adapter = ADAPTERS.get(kind)
    return adapter.dialect if adapter is not None else None


def _refusal(option: PricedOption, route, model) -> str | None:
    """Why `route` cannot take `option`, or None when it can (or the option never reaches it)."""
    if _dialect(route.provider.kind) != option.dialect:
        if option.foreign_refused:
            return f"its provider ({route.provider.name}) does not speak the Anthropic format"
        return None  # translation drops it or refuses it by its own rules; the price is unchanged
    if option.name not in route.allowed_options:
        return f"the route via {route.provider.name} does not allow it"
    if option.name in WEB_SEARCH_OPTIONS and model.web_search_price is None:
        return "the model has no web search price, so the searches could not be billed"
    return None


def routes_allowing(options: tuple[PricedOption, ...], routes: list, model) -> list:
    """The routes that take every option, in order; 400 naming the first option when none does."""
    if not options:
        return routes
    allowed = [r for r in routes if all(_refusal(o, r, model) is None for o in options)]
    if allowed:
        return allowed
    for option in options:
        reasons = [reason for r in routes if (reason := _refusal(option, r, model)) is not None]
        if reasons:
            raise GatewayError(
                400,
                f"`{option.param}`: `{option.name}` changes what the provider charges and is not allowed for "
                f"model `{model.public_id}` ({reasons[0]}). Remove it, or ask the gateway operator to add "
                f"`{option.name}` to the allowed options of this model's route.",
                param=option.param,
                code=ErrorCode.OPTION_NOT_ALLOWED,
            )
    raise GatewayError(  # every route refuses a combination of options
        400,
        f"No route of model `{model.public_id}` allows all of these options together: "
        f"{', '.join(o.name for o in options)}. Ask the gateway operator to allow them on one route.",
        code=ErrorCode.OPTION_NOT_ALLOWED,
    )


def web_searches_billed(body: dict, route, client_format: str) -> int:
    """Searches the provider bills that its usage does not report: OpenAI-format search runs one per request."""
    if client_format == OPENAI and route is not None and _dialect(route.provider.kind) == OPENAI:
        return 1 if body.get("web_search_options") is not None else 0
    return 0
