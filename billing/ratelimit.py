"""Per-key rate limits: requests per minute (RPM) and tokens per minute (TPM).

Fixed one-minute windows in shared state (Redis with REDIS_URL, so every instance counts
together; process memory otherwise). A request is admitted when the key's requests in this
minute stay within RPM and the tokens already used this minute plus an upper bound on this
request's prompt (ai_proxy.tokens.tokens_upper_bound: an estimate would let dense text overshoot)
stay within TPM; the tokens actually used are added when the request is metered.
A fixed window can let up to twice the limit through across a minute boundary; that is the
usual trade for one counter per key and no per-request sorted sets. Keys without limits pay
nothing: no shared-state round trip at all.

While Redis is unreachable each process counts in its own memory instead: a limit still holds
per process (an instance with N workers admits up to N times it), rather than not at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from gateway_site.shared_state import STATE_ERRORS, process_fallback, shared_state, state_outage

WINDOW_SECONDS = 60
_KEEP_SECONDS = 2 * WINDOW_SECONDS


@dataclass(frozen=True)
class RateLimitStatus:
    rpm_limit: int | None
    rpm_used: int
    tpm_limit: int | None
    tpm_used: int
    reset_at: float  # unix time the window ends
    counted_tokens: int = 0  # the prompt bound already added to the window at admission

    def reset_in(self, now: float | None = None) -> int:
        return max(1, int(self.reset_at - (now or time.time()) + 0.999))

    def headers(self, client_format: str) -> dict[str, str]:
        """OpenAI's x-ratelimit-* or Anthropic's anthropic-ratelimit-* headers (WIRE.md §4)."""
        out: dict[str, str] = {}
        reset_seconds = self.reset_in()
        reset_rfc3339 = datetime.fromtimestamp(self.reset_at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for kind, limit, used in (("requests", self.rpm_limit, self.rpm_used), ("tokens", self.tpm_limit, self.tpm_used)):
            if limit is None:
                continue
            remaining = str(max(0, limit - used))
            if client_format == "anthropic":
                out[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
                out[f"anthropic-ratelimit-{kind}-remaining"] = remaining
                out[f"anthropic-ratelimit-{kind}-reset"] = reset_rfc3339
            else:
                out[f"x-ratelimit-limit-{kind}"] = str(limit)
                out[f"x-ratelimit-remaining-{kind}"] = remaining
                out[f"x-ratelimit-reset-{kind}"] = f"{reset_seconds}s"
        return out


class RateLimited(Exception):
    def __init__(self, message: str, status: RateLimitStatus, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable


def _window(now: float) -> tuple[int, float]:
    window = int(now // WINDOW_SECONDS)
    return window, (window + 1) * WINDOW_SECONDS


async def rate_limit_admit(
    *, key_id: int, rpm_limit: int | None, tpm_limit: int | None, prompt_tokens: int
) -> RateLimitStatus | None:
    """Count this request against the key's limits; raise RateLimited if it is over.

    Returns None for keys without limits. If shared state is unreachable the request is
    counted in this process's memory: an outage of the counter must not become an outage of the
    gateway, nor lift the limits.
    """
    if not rpm_limit and not tpm_limit:
        return None
    now = time.time()
    window, reset_at = _window(now)
    state = shared_state()
    token_key = f"rl:tok:{key_id}:{window}"
    counted = prompt_tokens if tpm_limit else 0
    try:
        rpm_used = await state.incr(f"rl:req:{key_id}:{window}", ttl=_KEEP_SECONDS) if rpm_limit else 0
        # The prompt counts at admission, so a burst of concurrent requests cannot all pass
        # a check made before any of them finished; settle adds only the difference.
        tpm_after = await state.incr(token_key, counted, ttl=_KEEP_SECONDS) if tpm_limit else 0
        state_outage.succeeded()
    except STATE_ERRORS as exc:
        state_outage.failed(exc, "counting rate limits")
        state = None
        rpm_used = process_fallback.incr(f"rl:req:{key_id}:{window}", ttl=_KEEP_SECONDS) if rpm_limit else 0
        tpm_after = process_fallback.incr(token_key, counted, ttl=_KEEP_SECONDS) if tpm_limit else 0
    tpm_used = tpm_after - counted
    status = RateLimitStatus(rpm_limit, rpm_used, tpm_limit, tpm_after, reset_at, counted)
    refusal = None
    if rpm_limit and rpm_used > rpm_limit:
        refusal = RateLimited(
            f"Rate limit reached: this key allows {rpm_limit} requests per minute. "
            f"Retry in {status.reset_in(now)} s.",
            status,
        )
    elif tpm_limit and tpm_after > tpm_limit:
        if prompt_tokens > tpm_limit:
            refusal = RateLimited(
                f"This request's input can cost up to {prompt_tokens} tokens, more than the key's limit of "
                f"{tpm_limit} tokens per minute; it can never be admitted. Shorten it or ask for a higher limit.",
                status,
                retryable=False,
            )
        else:
            refusal = RateLimited(
                f"Rate limit reached: this key allows {tpm_limit} tokens per minute and has used {tpm_used}. "
                f"Retry in {status.reset_in(now)} s.",
                status,
            )
    if refusal is not None:
        if counted:  # a refused request uses no tokens
            await _count(state, token_key, -counted)
        raise refusal
    return status


async def rate_limit_settle(*, key_id: int, tokens: int, counted: int = 0) -> None:
    """Correct the key's current window to the tokens a finished request really used
    (`counted` were added at admission)."""
    difference = tokens - counted
    if difference == 0:
        return
    window, _ = _window(time.time())
    await _count(shared_state(), f"rl:tok:{key_id}:{window}", difference)


async def _count(state, key: str, amount: int) -> None:
    """Add to a window in shared state, or in this process's stand-in when state is None or
    unreachable."""
    if state is not None:
        try:
            await state.incr(key, amount, ttl=_KEEP_SECONDS)
            return
        except STATE_ERRORS as exc:
            state_outage.failed(exc, "counting rate limits")
    process_fallback.incr(key, amount, ttl=_KEEP_SECONDS)
