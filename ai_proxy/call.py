"""One proxied request's facts as they become known (ProxyCall); metering reads it at the end.

Outcomes are recorded through methods, so every path that ends a request says the same thing to
the ledger: `succeeded()`, `failed(error)`, `failed_internally()`, `client_left()`,
`stream_broke()`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from billing.admission import Admission
from billing.ratelimit import RateLimitStatus
from catalog.selectors import ModelEntry, RouteEntry
from core.errors import GatewayError
from orgs.selectors import KeyContext


if TYPE_CHECKING:
    from .operations import Operation

CLIENT_DISCONNECTED = "client_disconnected"
UPSTREAM_STREAM_ERROR = "upstream_stream_error"
INTERNAL_ERROR = "internal_error"


@dataclass(eq=False)
class ProxyCall:
    """`client_format` is the operation's error format ("openai" | "anthropic": error bodies and
    rate-limit headers) and `endpoint` its ledger name; both copied from `operation` once, as
    metering and the log line read them."""

    operation: "Operation"
    request_id: str
    client_format: str
    endpoint: str
    started_at: datetime
    t0: float
    client_ip: str | None
    key: KeyContext | None = None
    requested_model: str = ""
    model: ModelEntry | None = None
    route: RouteEntry | None = None
    streamed: bool = False
    status: int = 0
    error_type: str = ""
    usage: dict | None = None
    tokens_estimated: bool = False
    ttft_ms: int | None = None
    client_disconnected: bool = False
    body: dict = field(default_factory=dict)
    completion_text: str | None = None
    rate_limits: RateLimitStatus | None = None
    admission: Admission | None = None  # its rate limits and budgets (billing.admission)
    worst_case: Decimal = Decimal(0)  # the most it can cost (see proxy._worst_case)
    worst_tokens: tuple[int, int] = (0, 0)  # the prompt and output token bounds behind it
    in_flight: str = ""  # where it is registered in flight (billing.inflight)
    metered: bool = False
    relay_started: bool = False
    options: tuple = ()  # the priced options it asked for (ai_proxy.priced_options)

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.t0) * 1000)

    # -- outcomes ---------------------------------------------------------------------------------

    def succeeded(self, status: int = 200) -> None:
        self.status = status

    def failed(self, error: GatewayError) -> None:
        """Ended by an error the client sees in its format (ours, or the provider's passed on)."""
        self.status = error.status
        self.error_type = error.code or error.openai_type()

    def failed_internally(self) -> None:
        self.status = 500
        self.error_type = INTERNAL_ERROR

    def client_left(self) -> None:
        """The client went away (before or during the response). Stored as 499; an upstream
        failure already recorded keeps its type, so the ledger still says what went wrong."""
        self.client_disconnected = True
        self.status = 499
        self.error_type = self.error_type or CLIENT_DISCONNECTED

    def stream_broke(self) -> None:
        """The provider's stream failed or ended incomplete after the response had started."""
        self.status = 502
        self.error_type = UPSTREAM_STREAM_ERROR
