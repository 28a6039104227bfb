"""Token estimates, for when a provider never says (a client gone mid-stream, count_tokens on a
route without a native counter). Always flagged as estimates where they are stored.

The estimate is the usual rule of thumb for English with BPE tokenizers, ~4 characters a token,
plus a small per-message overhead. It ships no vocabulary (none can be downloaded here) and is
within ~20% for ordinary prose; it is never used where the provider's own count exists.
"""

from __future__ import annotations

from collections.abc import Iterable
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


# --- Admission: an upper bound, never an estimate ------------------------------------------
#
# Budgets and TPM limits admit a request before the provider has counted it, so they need a
# number the real count can never exceed. The estimate above is ~4x too low for dense text
# (one-letter words, CJK, emoji). No tokenizer either provider uses maps fewer than one UTF-8
# byte to a token (byte-level BPE: every token covers at least one byte), so the UTF-8 byte
# length of every text the provider reads is a true bound. Structure (JSON punctuation, role
# markers, separators the provider renders around messages, tool definitions and arguments) is
# bounded generously per object member and per array item. What the body does not contain as
# text is bounded by its provider's documented maximum (images), or, when nothing bounds it
# (a PDF's pages, a file by id, server-tool results), by the model's context window: the
# provider refuses a prompt longer than that.

# Per object member: two quotes, colon, comma and the indentation a provider may render, each
# possibly a token of its own. Per array item: separator and newline.
MEMBER_BOUND = 8
ITEM_BOUND = 4
# Reply priming and end-of-prompt markers (OpenAI documents 3 tokens of priming), and per
# message the role markers and separators around it (OpenAI documents 3, plus 1 for a name).
REQUEST_OVERHEAD_BOUND = 16
PER_MESSAGE_BOUND = 8
# The system prompt Anthropic adds when `tools` are present: at most 530 tokens across its
# models (Claude 3 Opus, tool_choice auto), per the "Pricing" table of
# docs.anthropic.com/en/docs/build-with-claude/tool-use.
TOOL_USE_SYSTEM_PROMPT_BOUND = 530

# Most tokens one image can cost, from the providers' vision docs:
# - Anthropic (platform.claude.com/docs/en/build-with-claude/vision): images are resized to the
#   model's maximal native resolution and cost one token per 28x28 px patch; the largest is
#   Claude Opus 4.7's 2576 px long edge, ~3.75 MP: 3.75e6 / 784 = 4784 tokens (earlier models
#   stop at ~1.15 MP, ~1600 tokens).
# - OpenAI (platform.openai.com/docs/guides/images-vision, "Calculating costs"): at
#   `detail: high`, GPT-4o-class models fit the image in 2048x2048, scale its short side to
#   768 px and charge 85 + 170 per 512 px tile: at most 768x2048 = 8 tiles, 1445 tokens.
#   Patch-based models (GPT-4.1 mini/nano, o4-mini) cap at 1536 patches times a multiplier of
#   at most 2.46 = 3779 tokens. gpt-4o-mini multiplies its tile figures (2833 base + 5667 per
#   tile) to keep the price of an image equal at its lower token price: 2833 + 8 * 5667 = 48169.
IMAGE_TOKENS_MAX = 4784
_IMAGE_TOKENS_BY_UPSTREAM_PREFIX = {"gpt-4o-mini": 48169}
# Anthropic-defined tools (`type` other than custom): server tools add what they fetch or run
# to the prompt, and the client tools' system prompts are sized by Anthropic, not the request.
_CUSTOM_TOOL_TYPES = (None, "custom", "function")


def image_tokens_max(upstream_models: Iterable[str]) -> int:
    """The most one image can cost on any of these upstream models (see IMAGE_TOKENS_MAX)."""
    most = IMAGE_TOKENS_MAX
    for name in upstream_models:
        for prefix, tokens in _IMAGE_TOKENS_BY_UPSTREAM_PREFIX.items():
            if name.startswith(prefix):
                most = max(most, tokens)
    return most


def tokens_upper_bound(body: dict, *, image_tokens: int, unbounded_tokens: int) -> int:
    """Input tokens this chat-completions or messages body can cost at most, on any provider.

    `image_tokens` is the most one image costs on the model's upstreams (`image_tokens_max`);
    `unbounded_tokens` what a part with no bound of its own counts for (the model's context
    window). Only for admission: usage estimates use `tokens_for_request`.
    """
    bound = _UpperBound(image_tokens, unbounded_tokens)
    total = REQUEST_OVERHEAD_BOUND
    for key, value in body.items():
        if key == "model" or value is None or isinstance(value, (bool, int, float)):
            continue  # parameters, not prompt: no provider tokenizes them
        total += MEMBER_BOUND + _utf8_len(key)
        if key == "messages" and isinstance(value, list):
            total += sum(bound.message(message) for message in value)
        elif key == "tools" and isinstance(value, list) and value:
            total += TOOL_USE_SYSTEM_PROMPT_BOUND + sum(ITEM_BOUND + bound.tool(tool) for tool in value)
        elif key == "mcp_servers" and value:
            total += unbounded_tokens  # remote tools: their definitions and results come from elsewhere
        else:
            total += json_bytes_bound(value)
    return total


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def json_bytes_bound(value: Any) -> int:
    """UTF-8 bytes of every string in `value` plus MEMBER_BOUND / ITEM_BOUND per member / item.

    Iterative: a body may nest as deep as the JSON parser allows, deeper than Python recursion.
    """
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += _utf8_len(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                total += MEMBER_BOUND + _utf8_len(str(key))
                stack.append(child)
        elif isinstance(item, list):
            total += ITEM_BOUND * len(item)
            stack.extend(item)
        else:  # numbers, booleans, null: their JSON text
            total += len(str(item))
    return total


class _UpperBound:
    """The parts of a request whose bound is not their bytes: content blocks and tools."""

    def __init__(self, image_tokens: int, unbounded_tokens: int) -> None:
        self.image_tokens = image_tokens
        self.unbounded_tokens = unbounded_tokens

    def message(self, message: Any) -> int:
        if not isinstance(message, dict):
            return PER_MESSAGE_BOUND + json_bytes_bound(message)
        total = PER_MESSAGE_BOUND
        for key, value in message.items():
            if key == "content" and isinstance(value, list):
                total += self.blocks(value)
            elif key == "audio" and value:
                total += self.unbounded_tokens  # an earlier audio reply, by id: its length is not here
            else:
                total += json_bytes_bound(value)
        return total

    def blocks(self, blocks: list) -> int:
        return sum(ITEM_BOUND + self.block(block) for block in blocks)

    def block(self, block: Any) -> int:
        if not isinstance(block, dict):
            return json_bytes_bound(block)
        kind = block.get("type")
        if kind == "image_url":  # OpenAI: the URL is often a data: URL; what it costs is the image
            rest = {k: v for k, v in block.items() if k != "image_url"}
            return self.image_tokens + json_bytes_bound(rest)
        if kind == "image":  # Anthropic: base64 data or a URL, billed as the image
            rest = {k: v for k, v in block.items() if k != "source"}
            return self.image_tokens + json_bytes_bound(rest)
        if kind == "file" or kind == "container_upload" or (kind == "document" and self._opaque_document(block)):
            # A PDF costs its pages' text and images, which its compressed bytes do not bound.
            return self.unbounded_tokens + json_bytes_bound(block)
        if kind == "tool_result" and isinstance(block.get("content"), list):
            rest = {k: v for k, v in block.items() if k != "content"}
            return json_bytes_bound(rest) + self.blocks(block["content"])
        return json_bytes_bound(block)

    @staticmethod
    def _opaque_document(block: dict) -> bool:
        source = block.get("source")
        if not isinstance(source, dict):
            return False
        if source.get("type") in ("url", "file"):
            return True
        return source.get("type") == "base64" and source.get("media_type") != "text/plain"

    def tool(self, tool: Any) -> int:
        if isinstance(tool, dict) and tool.get("type") not in _CUSTOM_TOOL_TYPES:
            return self.unbounded_tokens + json_bytes_bound(tool)
        return json_bytes_bound(tool)
