"""Fixed latency and time-to-first-token histograms, so percentiles survive roll-ups.

Every hourly roll-up row counts its requests into the same buckets (upper bounds in ms, the last
one open-ended), so any set of rows merges by adding counts and p50/p95 of the merge is as exact
as the buckets: linear interpolation inside the bucket the percentile falls in, as Prometheus
does. The bounds cover what an LLM call takes (tens of ms to minutes); changing them means
re-rolling history, so they are fixed here, not a setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

BOUNDS_MS: tuple[int, ...] = (50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000)
BUCKETS = len(BOUNDS_MS) + 1
LATENCY_FIELDS = tuple(f"latency_b{i}" for i in range(BUCKETS))
TTFT_FIELDS = tuple(f"ttft_b{i}" for i in range(BUCKETS))


def bucket_ranges() -> list[tuple[int, int | None]]:
    """(lower inclusive, upper exclusive or None) in ms, one per bucket."""
    lowers = (0, *BOUNDS_MS)
    return [(lowers[i], BOUNDS_MS[i] if i < len(BOUNDS_MS) else None) for i in range(BUCKETS)]


def percentile(counts: Sequence[int], p: float) -> float | None:
    """The p-th quantile (0 < p < 1) in ms of a merged histogram; None when it holds nothing."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = p * total
    seen = 0
    for (low, high), count in zip(bucket_ranges(), counts):
        if count and seen + count >= rank:
            if high is None:  # open-ended: all we know is "at least low"
                return float(low)
            return low + (high - low) * (rank - seen) / count
        seen += count
    return float(BOUNDS_MS[-1])


def counts_from(row: Mapping, fields: Sequence[str]) -> list[int]:
    return [int(row.get(f) or 0) for f in fields]
