from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeliveryOutcome:
    ok: bool
    # False when trying again cannot help (a refused destination, a 4xx other than 408/429).
    retryable: bool = False
    status_code: int | None = None
    error: str = ""

    @classmethod
    def success(cls, status_code: int | None = None) -> "DeliveryOutcome":
        return cls(ok=True, status_code=status_code)

    @classmethod
    def failure(cls, error: str, *, retryable: bool, status_code: int | None = None) -> "DeliveryOutcome":
        return cls(ok=False, retryable=retryable, status_code=status_code, error=error[:500])
