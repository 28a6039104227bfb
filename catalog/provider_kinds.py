"""What the catalog needs to know about each provider kind, told by the provider adapters.

The catalog sits below ai_proxy (README, "Project layout"), so it cannot ask the adapters
(ai_proxy/providers) itself: AiProxyConfig.ready registers each adapter's facts here at startup,
and the catalog's models, admin and commands ask `kind_facts(kind)` instead of testing kind names.
A new provider kind therefore needs no edit here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindFacts:
    dialect: str  # the wire format its bodies use: "openai" | "anthropic"
    needs_base_url: bool  # False for offline providers (mock)
    offline: bool  # True: never needs a secret (mock)
    # The catalog model types ("chat", "embedding") some operation can serve through this kind:
    # routes of a model of any other type are refused where the operator makes them.
    model_types: frozenset[str] = frozenset()


# Before registration (a kind the adapters do not know): the strictest answers.
_UNKNOWN = KindFacts(dialect="", needs_base_url=True, offline=False)
_FACTS: dict[str, KindFacts] = {}


def kind_facts_register(kind: str, facts: KindFacts) -> None:
    _FACTS[kind] = facts


def kind_facts(kind: str) -> KindFacts:
    return _FACTS.get(kind, _UNKNOWN)


def kinds_needing_base_url(kinds: list[str]) -> str:
    """'openai and anthropic': the kinds of `kinds` whose providers need a base URL, for messages."""
    names = [kind for kind in kinds if kind_facts(kind).needs_base_url]
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


def route_refusal(kind: str, model_type: str) -> str | None:
    """Why a route on a `kind` provider cannot serve a `model_type` model, or None when it can."""
    if model_type in kind_facts(kind).model_types:
        return None
    able = ", ".join(f"`{k}`" for k, facts in _FACTS.items() if model_type in facts.model_types) or "none"
    return (f"`{kind}` providers have no endpoint for {model_type} models: route them to a provider of "
            f"kind {able}.")
