"""What the catalog needs to know about each provider kind, told by the provider adapters.

The catalog sits below ai_proxy (README, "Project layout"), so it cannot ask the adapters
(ai_proxy/providers) itself: AiProxyConfig.ready hands it a source of each adapter's facts at
startup, read on every question (so an adapter added to the table later counts too), and the
catalog's models, admin and commands ask `kind_facts(kind)` instead of testing kind names.
The kinds themselves are the adapters' too: `Provider.kind` accepts any registered kind (the
admin and `set_provider --kind` offer them), so a new provider is an adapter module and its line in
ai_proxy.providers.ADAPTERS, with no edit and no migration here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError


@dataclass(frozen=True)
class KindFacts:
    label: str  # what the admin shows: "Anthropic Messages"
    dialect: str  # the wire format its bodies use: "openai" | "anthropic"
    needs_base_url: bool  # False for offline providers (mock)
    offline: bool  # True: never needs a secret (mock)
    # The catalog model types ("chat", "embedding") some operation can serve through this kind:
    # routes of a model of any other type are refused where the operator makes them.
    model_types: frozenset[str] = frozenset()


# Before registration (a kind the adapters do not know): the strictest answers.
_UNKNOWN = KindFacts(label="", dialect="", needs_base_url=True, offline=False)
_source: Callable[[], dict[str, KindFacts]] = dict


def kind_facts_source(source: Callable[[], dict[str, KindFacts]]) -> None:
    """Where the facts come from: kind -> KindFacts, in the adapters' order (set by ai_proxy)."""
    global _source
    _source = source


def kind_facts(kind: str) -> KindFacts:
    return _source().get(kind, _UNKNOWN)


def registered_kinds() -> list[str]:
    return list(_source())


def kind_choices() -> list[tuple[str, str]]:
    """(kind, label) for the admin's select, in the adapters' order (callable: read at render time)."""
    return [(kind, f"{kind}: {facts.label}") for kind, facts in _source().items()]


def kind_validate(value: str) -> None:
    """Provider.kind's validator: a kind some adapter serves."""
    facts = _source()
    if value not in facts:
        known = ", ".join(facts) or "none registered"
        raise ValidationError(f"`{value}` is not a provider kind this gateway has an adapter for ({known}).")


def kinds_needing_base_url(kinds: list[str]) -> str:
    """'openai and anthropic': the kinds of `kinds` whose providers need a base URL, for messages."""
    names = [kind for kind in kinds if kind_facts(kind).needs_base_url]
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


def route_refusal(kind: str, model_type: str) -> str | None:
    """Why a route on a `kind` provider cannot serve a `model_type` model, or None when it can."""
    if model_type in kind_facts(kind).model_types:
        return None
    able = ", ".join(f"`{k}`" for k, facts in _source().items() if model_type in facts.model_types) or "none"
    return (f"`{kind}` providers have no endpoint for {model_type} models: route them to a provider of "
            f"kind {able}.")
