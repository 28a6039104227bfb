"""Translations, registered by (operation body format, upstream dialect).

The body format is the operation's (`Operation.body_format`, ai_proxy.operations: "chat",
"messages", "responses"; "embeddings" is next); the dialect is the route provider's
(`ProviderAdapter.dialect`: "openai" or "anthropic"). Each module is named after the pair it
translates. Adding a pair is one module exposing a `Translation` (base.py) and one line here.

A pair missing from the table is a clear error (`TranslationMissing`: that route is skipped with
a reason naming the pair), never a body in the wrong dialect.
"""

from __future__ import annotations

from .base import Framer, Translation
from .chat_to_anthropic import CHAT_TO_ANTHROPIC
from .messages_to_chat import MESSAGES_TO_CHAT
from .passthrough import CHAT_PASSTHROUGH, EMBEDDINGS_PASSTHROUGH, MESSAGES_PASSTHROUGH
from .responses_to_anthropic import RESPONSES_TO_ANTHROPIC
from .responses_to_chat import RESPONSES_TO_CHAT

TRANSLATIONS: dict[tuple[str, str], Translation] = {
    ("chat", "openai"): CHAT_PASSTHROUGH,
    ("chat", "anthropic"): CHAT_TO_ANTHROPIC,
    ("messages", "anthropic"): MESSAGES_PASSTHROUGH,
    ("messages", "openai"): MESSAGES_TO_CHAT,
    ("embeddings", "openai"): EMBEDDINGS_PASSTHROUGH,
    ("responses", "openai"): RESPONSES_TO_CHAT,
    ("responses", "anthropic"): RESPONSES_TO_ANTHROPIC,
}


class TranslationMissing(Exception):
    """No translation registered for (body format, dialect)."""


def translation_for(body_format: str, dialect: str) -> Translation:
    try:
        return TRANSLATIONS[(body_format, dialect)]
    except KeyError:
        raise TranslationMissing(
            f"no translation from `{body_format}` bodies to the `{dialect}` dialect is registered "
            "(ai_proxy.translations.TRANSLATIONS)"
        ) from None


__all__ = ["TRANSLATIONS", "Framer", "Translation", "TranslationMissing", "translation_for"]
