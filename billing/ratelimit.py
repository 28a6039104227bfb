"""Rate limits: requests per minute (RPM) and tokens per minute (TPM), per key and per organization.

Fixed one-minute windows in shared state (Redis with REDIS_URL, so every instance counts
together; process memory otherwise), counted by billing.admission together with every other
limit and budget of the request in one atomic step. A request is admitted when, for every limit
that applies, the requests in this minute stay within RPM and the tokens already used this minute
plus an upper bound on this request's prompt (ai_proxy.tokens.tokens_upper_bound: an estimate
would let dense text overshoot) stay within TPM; the tokens actually used replace the bound when
the request is metered. A fixed window can let up to twice the limit through across a minute
boundary; that is the usual trade for one counter per limit and no per-request sorted sets.
Scopes without limits pay nothing: no shared-state round trip at all.

While Redis is unreachable each process counts in its own memory instead: a limit still holds
per process (an instance with N workers admits up to N times it), rather than not at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from .scopes import ORGANIZATION, Scope

WINDOW_SECONDS = 60
KEEP_MS = 2 * WINDOW_SECONDS * 1000
REQUESTS, TOKENS = "requests", "tokens"


@dataclass(frozen=True)
class RateLimit:
    scope: Scope
    kind: str  # REQUESTS or TOKENS
    limit: int

    def key(self, window: int) -> str:
        return rate_limit_key(self.scope, self.kind, window)


def rate_limit_key(scope: Scope, kind: str, window: int) -> str:
    return f"rl:{scope.state_prefix}:{'req' if kind == REQUESTS else 'tok'}:{window}"


def window_of(now: float) -> tuple[int, float]:
    """This minute's number and the unix time it ends."""
    window = int(now // WINDOW_SECONDS)
    return window, (window + 1) * WINDOW_SECONDS


@dataclass(frozen=True)
class RateLimitStatus:
    """The tightest limit of each kind (least remaining) and its use: what the headers report."""

    rpm_limit: int | None
    rpm_used: int
    tpm_limit: int | None
    tpm_used: int
    reset_at: float  # unix time the window ends

    @classmethod
    def tightest(cls, used: dict[RateLimit, int], reset_at: float) -> "RateLimitStatus":
        best: dict[str, tuple[int, int]] = {}
        for limit, count in used.items():
            candidate = (limit.limit, count)
            current = best.get(limit.kind)
            if current is None or (candidate[0] - candidate[1], candidate[0]) < (current[0] - current[1], current[0]):
                best[limit.kind] = candidate
        rpm, tpm = best.get(REQUESTS, (None, 0)), best.get(TOKENS, (None, 0))
        return cls(rpm[0], rpm[1], tpm[0], tpm[1], reset_at)

    def reset_in(self, now: float | None = None) -> int:
        return max(1, int(self.reset_at - (now or time.time()) + 0.999))

    def headers(self, client_format: str) -> dict[str, str]:
        """OpenAI's x-ratelimit-* or Anthropic's anthropic-ratelimit-* headers (WIRE.md §4)."""
        out: dict[str, str] = {}
        reset_seconds = self.reset_in()
        reset_rfc3339 = datetime.fromtimestamp(self.reset_at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for kind, limit, used in ((REQUESTS, self.rpm_limit, self.rpm_used), (TOKENS, self.tpm_limit, self.tpm_used)):
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
    def __init__(self, message: str, status: RateLimitStatus, *, retryable: bool = True,
                 limit: RateLimit | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.limit = limit  # the limit that refused


def rate_limited(limit: RateLimit, *, used: int, prompt_tokens: int, status: RateLimitStatus) -> RateLimited:
    """The refusal by `limit`, which this request would take to `used`; the message names it."""
    who = "this key" if limit.scope.kind != ORGANIZATION else "this organization"
    owner = "the key's" if limit.scope.kind != ORGANIZATION else "the organization's"
    if limit.kind == REQUESTS:
        return RateLimited(f"Rate limit reached: {who} allows {limit.limit} requests per minute. "
                           f"Retry in {status.reset_in()} s.", status, limit=limit)
    if prompt_tokens > limit.limit:
        return RateLimited(
            f"This request's input can cost up to {prompt_tokens} tokens, more than {owner} limit of "
            f"{limit.limit} tokens per minute; it can never be admitted. Shorten it or ask for a higher limit.",
            status, retryable=False, limit=limit,
        )
    return RateLimited(
        f"Rate limit reached: {who} allows {limit.limit} tokens per minute and has used {used - prompt_tokens}. "
        f"Retry in {status.reset_in()} s.", status, limit=limit,
    )
