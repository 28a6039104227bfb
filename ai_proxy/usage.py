"""Provider usage in one shape for metering.

`prompt_tokens` is the total input (OpenAI's convention); cache reads and writes are subsets of it.
Anthropic reports them *beside* input_tokens, so they are added back here.
"""

from __future__ import annotations


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_openai(usage: dict) -> dict:
    details = usage.get("prompt_tokens_details") or {}
    cache_read = _int(details.get("cached_tokens"))
    cache_write = _int(details.get("cache_write_tokens"))
    return {
        # A provider reporting more cached than total input is wrong; bill the larger figure
        # rather than fail to bill at all.
        "prompt_tokens": max(_int(usage.get("prompt_tokens")), cache_read + cache_write),
        "completion_tokens": _int(usage.get("completion_tokens")),
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
    }


def usage_from_anthropic(usage: dict) -> dict:
    cache_read = _int(usage.get("cache_read_input_tokens"))
    cache_write = _int(usage.get("cache_creation_input_tokens"))
    out = {
        "prompt_tokens": _int(usage.get("input_tokens")) + cache_read + cache_write,
        "completion_tokens": _int(usage.get("output_tokens")),
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
    }
    # Server tool uses billed per use (web search); present only when there were any.
    server_tools = usage.get("server_tool_use")
    searches = _int(server_tools.get("web_search_requests")) if isinstance(server_tools, dict) else 0
    if searches:
        out["web_search_requests"] = searches
    return out
