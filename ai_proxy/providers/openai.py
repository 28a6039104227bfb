"""OpenAI-compatible providers (OpenAI, xAI, Perplexity, vLLM, ...): Bearer auth, `/chat/completions`
and `/embeddings` under a base URL that already ends in `/v1` where the provider wants one."""

from __future__ import annotations

from ..usage import usage_from_openai
from .base import OPENAI, ProviderAdapter


class OpenAIAdapter(ProviderAdapter):
    kind = "openai"
    label = "OpenAI-compatible (Chat Completions)"
    dialect = OPENAI
    paths = {"chat": "/chat/completions", "embeddings": "/embeddings"}

    def usage(self, data: dict) -> dict | None:
        usage = data.get("usage")
        return usage_from_openai(usage) if usage and isinstance(usage, dict) else None
