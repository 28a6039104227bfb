"""Token estimates, for when a provider never says (a client gone mid-stream, count_tokens on a
route without a native counter). Always flagged as estimates where they are stored.

The estimate is the usual rule of thumb for English with BPE tokenizers, ~4 characters a token,
plus a small per-message overhead. It ships no vocabulary (none can be downloaded here) and is
within ~20% for ordinary prose; it is never used where the provider's own count exists.
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 4
PER_MESSAGE_OVERHEAD = 4
PER_IMAGE_TOKENS = 1000  # mid-sized image on either provider


def tokens_for_chars(chars: int) -> int:
    if chars <= 0:
        return 0
    return max(1, (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)


def tokens_for_text(text: str) -> int:
    return tokens_for_chars(len(text)) if text else 0


def _content_tokens(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return tokens_for_text(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind in ("image", "image_url"):
                total += PER_IMAGE_TOKENS
            elif kind == "text":
                total += tokens_for_text(str(part.get("text", "")))
            elif kind == "tool_use":
                total += tokens_for_text(str(part.get("name", ""))) + tokens_for_text(str(part.get("input", "")))
            elif kind == "tool_result":
                total += _content_tokens(part.get("content"))
            else:
                total += tokens_for_text(str(part))
        return total
    return tokens_for_text(str(content))


def tokens_for_request(body: dict) -> int:
    """Estimated input tokens of a chat-completions or messages request body."""
    total = 0
    system = body.get("system")
    if system:
        total += _content_tokens(system) + PER_MESSAGE_OVERHEAD
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        total += PER_MESSAGE_OVERHEAD + _content_tokens(message.get("content"))
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict):
                total += tokens_for_text(str(call.get("function", "")))
    for tool in body.get("tools") or []:
        total += tokens_for_text(str(tool))
    return total
