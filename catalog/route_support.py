"""Which provider kinds can serve which catalog model types (chat, embedding).

The answer belongs to ai_proxy: its provider adapters and operations know which upstream
endpoints each wire dialect has (an Anthropic provider has no embeddings endpoint). catalog must
not import ai_proxy, so ai_proxy registers the rule when it loads (AiProxyConfig.ready), the way
billing registers its budget reader with orgs. The catalog's validation (model and route `clean`,
the admin's route inline) asks here, so an operator cannot build a route that could never serve.
"""

from __future__ import annotations

from collections.abc import Callable

# (provider kind, model type) -> None when a route of that kind can serve models of that type,
# else the reason, written for the operator.
RouteRule = Callable[[str, str], "str | None"]

_rule: RouteRule | None = None


def route_support_register(rule: RouteRule) -> None:
    global _rule
    _rule = rule


def route_refusal(provider_kind: str, model_type: str) -> str | None:
    """Why a `provider_kind` route cannot serve a `model_type` model, or None when it can."""
    return _rule(provider_kind, model_type) if _rule is not None else None
