from __future__ import annotations

from django.db import models

from catalog.models import PRICE_FIELD

COST_FIELD = dict(max_digits=20, decimal_places=10, default=0)
ROLLUP_COST_FIELD = dict(max_digits=24, decimal_places=10, default=0)


class UsageRecord(models.Model):
    """The ledger: one immutable row per request, whatever its outcome.

    Catalog ids (model, route) are kept as plain integers, not foreign keys: history must outlive
    the catalog rows it mentions, and a drained batch must never fail because a route was deleted.
    """

    class Endpoint(models.TextChoices):
        OPENAI = "openai", "OpenAI Chat Completions"
        ANTHROPIC = "anthropic", "Anthropic Messages"
        # Free at the provider (zero cost) but metered: it counts against the key's RPM.
        COUNT_TOKENS = "count_tokens", "Anthropic count_tokens"
        EMBEDDINGS = "embeddings", "OpenAI Embeddings"
        RESPONSES = "responses", "OpenAI Responses"

    # Unique so that a retried drain of the same buffered row can't bill twice.
    request_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(help_text="When the request started (UTC).")
    organization = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records"
    )
    api_key = models.ForeignKey(
        "orgs.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_records"
    )
    requested_model = models.CharField(max_length=200, blank=True, help_text="The name the client sent.")
    # The catalog public id (what roll-ups and /usage group by), or the requested name if unresolved.
    model_name = models.CharField(max_length=200, blank=True)
    model_id = models.IntegerField(null=True, blank=True)
    provider = models.CharField(max_length=60, blank=True)
    upstream_model = models.CharField(max_length=200, blank=True)
    route_id = models.IntegerField(null=True, blank=True)
    endpoint = models.CharField(max_length=20, choices=Endpoint.choices)
    streamed = models.BooleanField(default=False)
    status = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=60, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0, help_text="Total input, cached tokens included.")
    completion_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False, help_text="Gateway's estimate, not the provider's count.")
    cost = models.DecimalField(**COST_FIELD)
    # The prices in force when the request ran, so a later price change never rewrites history.
    input_price = models.DecimalField(**PRICE_FIELD)
    output_price = models.DecimalField(**PRICE_FIELD)
    cache_read_price = models.DecimalField(**PRICE_FIELD)
    cache_write_price = models.DecimalField(**PRICE_FIELD)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    client_disconnected = models.BooleanField(default=False)
    # Written for a request whose gateway process died before metering it (billing.inflight):
    # status 0, charged its reserved worst case, tokens estimated.
    lost_in_flight = models.BooleanField(default=False, help_text="The gateway died mid-request; charged the worst case.")
    prompt_text = models.TextField(null=True, blank=True)
    completion_text = models.TextField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "usage ledger row"
        indexes = [
            # /usage for today and the roll-up of one organization's day.
            models.Index(fields=["organization", "created_at"], name="usage_org_created"),
            # Roll-up and retention by day across organizations; the admin's date drill-down.
            models.Index(fields=["created_at"], name="usage_created"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model_name or '-'} {self.status}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class DailyUsage(models.Model):
    """The ledger summed per UTC day, organization, key and model (written by the roll-up task)."""

    day = models.DateField()
    organization = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="daily_usage"
    )
    api_key = models.ForeignKey("orgs.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model_name = models.CharField(max_length=200, blank=True)
    requests = models.PositiveIntegerField(default=0)
    error_requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(**ROLLUP_COST_FIELD)

    class Meta:
        ordering = ["-day", "organization", "model_name"]
        verbose_name = "daily usage"
        verbose_name_plural = "daily usage"
        indexes = [
            # /usage over closed days: one organization, a date range.
            models.Index(fields=["organization", "day"], name="daily_usage_org_day"),
            # The roll-up replaces a whole day at once.
            models.Index(fields=["day"], name="daily_usage_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.organization_id} {self.model_name}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class RollupDay(models.Model):
    """Which UTC days are rolled up (read from DailyUsage) and which have had raw rows pruned."""

    day = models.DateField(unique=True)
    rolled_up_at = models.DateTimeField()
    ledger_rows = models.PositiveIntegerField(default=0)
    # Set once retention deleted the day's ledger rows: the day can never be rolled up again.
    pruned_at = models.DateTimeField(null=True, blank=True)
    # Set by the ledger drain when it writes a row for this day after the roll-up (a long stream
    # that crossed midnight, a backlog): /usage reads the day from the ledger until the next
    # roll-up pass recomputes it and clears the flag.
    dirty = models.BooleanField(default=False)

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return str(self.day)


def _thresholds_validate(value: str) -> None:
    from django.core.exceptions import ValidationError

    try:
        numbers = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise ValidationError("Thresholds are whole percentages separated by commas, e.g. 50,80,100.") from None
    if not numbers or any(n <= 0 or n > 1000 for n in numbers):
        raise ValidationError("Each threshold is a percentage between 1 and 1000.")


class Budget(models.Model):
    """Money an organization, or one of its keys, may spend in a period.

    Spend is never stored here: it is the ledger's total for the current period window
    (billing.periods), so editing the amount never resets it and a budget added mid-period counts
    what was already spent. Several budgets may apply to one request (its key's and its
    organization's); a hard one refuses requests that could take spend past it, a soft one only
    alerts.
    """

    class Period(models.TextChoices):
        DAY = "day", "Day"
        WEEK = "week", "Week (from Monday)"
        MONTH = "month", "Calendar month"
        TOTAL = "total", "Total (never resets)"

    class Mode(models.TextChoices):
        HARD = "hard", "Hard (refuse requests)"
        SOFT = "soft", "Soft (alert only)"

    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="budgets")
    # Set: the budget of one key; empty: the whole organization's.
    api_key = models.ForeignKey(
        "orgs.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    amount_usd = models.DecimalField(max_digits=14, decimal_places=2)
    period = models.CharField(max_length=10, choices=Period.choices, default=Period.MONTH)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.HARD)
    thresholds = models.CharField(
        max_length=100, default="50,80,100", validators=[_thresholds_validate],
        help_text="Alert at these percentages of the amount, comma-separated.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "api_key", "period"]
        constraints = [
            # One budget per scope and period: set_budget and the admin update it in place.
            models.UniqueConstraint(
                fields=["organization", "period"], condition=models.Q(api_key__isnull=True),
                name="budget_one_per_org_period",
            ),
            models.UniqueConstraint(
                fields=["api_key", "period"], condition=models.Q(api_key__isnull=False),
                name="budget_one_per_key_period",
            ),
            models.CheckConstraint(condition=models.Q(amount_usd__gte=0), name="budget_amount_not_negative"),
        ]

    def __str__(self) -> str:
        scope = self.api_key.prefix if self.api_key_id else self.organization.slug
        return f"{scope}: ${self.amount_usd} per {self.period} ({self.mode})"

    @property
    def scope(self) -> str:
        return "key" if self.api_key_id else "organization"

    @property
    def threshold_list(self) -> list[int]:
        return sorted({int(part) for part in self.thresholds.split(",") if part.strip()})

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.api_key_id and self.organization_id and self.api_key.organization_id != self.organization_id:
            raise ValidationError({"api_key": "This key belongs to another organization."})


class AlertChannel(models.Model):
    """Where an organization's budget alerts go: an email address, a Slack-compatible incoming
    webhook, or a JSON webhook signed with `secret` (Standard Webhooks; billing.alert_channels)."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        SLACK = "slack", "Slack-compatible webhook"
        WEBHOOK = "webhook", "Signed JSON webhook"

    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="alert_channels")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    target = models.CharField(max_length=500, help_text="An email address, or the URL to post to.")
    # The whsec_ signing key of a webhook channel; empty for the other kinds. Shown once, when
    # the channel is created or its secret rotated.
    secret = models.CharField(max_length=100, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization", "kind", "target"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "kind", "target"], name="alert_channel_unique_target"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.target}"

    def save(self, *args, **kwargs) -> None:
        if self.kind == self.Kind.WEBHOOK and not self.secret:
            from .alert_channels.webhook import secret_new

            self.secret = secret_new()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        from django.core.exceptions import ValidationError
        from django.core.validators import URLValidator, validate_email

        try:
            if self.kind == self.Kind.EMAIL:
                validate_email(self.target)
            else:
                URLValidator(schemes=["http", "https"])(self.target)
        except ValidationError:
            raise ValidationError(
                {"target": "Enter an email address." if self.kind == self.Kind.EMAIL else "Enter an http(s) URL."}
            ) from None


class BudgetAlert(models.Model):
    """One alert: a budget crossed a threshold (or was forecast to be exceeded) in one period window.

    The unique constraints are what make an alert fire exactly once, however many processes
    evaluate the same budget at the same moment: the row is inserted first, and only the process
    whose insert succeeded delivers it.
    """

    class Type(models.TextChoices):
        THRESHOLD_CROSSED = "budget.threshold_crossed", "Threshold crossed"
        EXCEEDED = "budget.exceeded", "Budget exceeded"
        FORECAST_EXCEEDED = "budget.forecast_exceeded", "Forecast to exceed"

    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="budget_alerts")
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    type = models.CharField(max_length=40, choices=Type.choices)
    # Empty for a forecast; crossing 100% and the first hard refusal share the 100 slot.
    threshold_percent = models.PositiveSmallIntegerField(null=True, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)  # null for a "total" budget
    period_end = models.DateTimeField(null=True, blank=True)
    window_key = models.CharField(max_length=20, help_text="The period window (billing.periods.PeriodWindow.key).")
    spent_usd = models.DecimalField(**COST_FIELD)
    budget_usd = models.DecimalField(max_digits=14, decimal_places=2)
    percent_used = models.DecimalField(max_digits=12, decimal_places=2)
    projected_spend_usd = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    # Exactly what every channel receives (the signed webhook's body), built once at creation.
    payload = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "threshold_percent", "window_key"],
                condition=~models.Q(type="budget.forecast_exceeded"), name="budget_alert_once_per_threshold",
            ),
            models.UniqueConstraint(
                fields=["budget", "window_key"],
                condition=models.Q(type="budget.forecast_exceeded"), name="budget_alert_forecast_once",
            ),
        ]
        indexes = [
            # The organization page's alert history, newest first.
            models.Index(fields=["organization", "-created_at"], name="budget_alert_org_created"),
        ]

    def __str__(self) -> str:
        what = f"{self.threshold_percent}%" if self.threshold_percent is not None else "forecast"
        return f"{self.type} {what} {self.window_key}"


class AlertDelivery(models.Model):
    """One attempt to send one alert to one channel (the delivery log)."""

    class Status(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        RETRYING = "retrying", "Failed; will retry"
        FAILED = "failed", "Failed; gave up"

    alert = models.ForeignKey(BudgetAlert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(AlertChannel, null=True, on_delete=models.SET_NULL, related_name="deliveries")
    attempt = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "alert deliveries"
        indexes = [
            # Attempts of one alert to one channel (the next attempt number, the alert's log).
            models.Index(fields=["alert", "channel"], name="alert_delivery_alert_channel"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.attempt} {self.status}"


# --- hourly roll-ups (dashboards, staff usage API) -----------------------------------------


class HourlyUsage(models.Model):
    """The ledger summed per UTC hour, organization, key, model, provider, endpoint and status class.

    What the dashboards and the staff usage API read. Days are derived from hours at query time in
    the reader's time zone, so a total never depends on it (whole UTC days may come from
    HourlyUsageDay / HourlyUsageOrgDay, sums of these rows kept by the roll-up). Latency and TTFT are fixed-bucket
    histograms (billing.histograms) so percentiles can be computed over any set of rows. Rows
    converted from DailyUsage for days whose ledger was already pruned sit at 00:00 UTC with an
    unknown provider/endpoint and empty histograms (migration 0006).
    """

    class StatusClass(models.TextChoices):
        OK = "2xx", "Success"
        CLIENT = "4xx", "Client error"
        LIMITED = "429", "Rate or budget limited"
        SERVER = "5xx", "Provider or server error"
        # Migrated daily roll-ups counted errors without their status.
        ERROR = "err", "Error (class unknown)"

    hour = models.DateTimeField(help_text="Start of the UTC hour.")
    organization = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="hourly_usage"
    )
    api_key = models.ForeignKey("orgs.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model_name = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=60, blank=True)
    endpoint = models.CharField(max_length=20, blank=True)
    status_class = models.CharField(max_length=3, choices=StatusClass.choices)
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(**ROLLUP_COST_FIELD)
    latency_ms_sum = models.BigIntegerField(default=0)
    # Histogram counts (bounds in billing.histograms.BOUNDS_MS; b11 is everything slower).
    latency_b0 = models.PositiveIntegerField(default=0)
    latency_b1 = models.PositiveIntegerField(default=0)
    latency_b2 = models.PositiveIntegerField(default=0)
    latency_b3 = models.PositiveIntegerField(default=0)
    latency_b4 = models.PositiveIntegerField(default=0)
    latency_b5 = models.PositiveIntegerField(default=0)
    latency_b6 = models.PositiveIntegerField(default=0)
    latency_b7 = models.PositiveIntegerField(default=0)
    latency_b8 = models.PositiveIntegerField(default=0)
    latency_b9 = models.PositiveIntegerField(default=0)
    latency_b10 = models.PositiveIntegerField(default=0)
    latency_b11 = models.PositiveIntegerField(default=0)
    # Only requests that streamed a first token are counted here.
    ttft_b0 = models.PositiveIntegerField(default=0)
    ttft_b1 = models.PositiveIntegerField(default=0)
    ttft_b2 = models.PositiveIntegerField(default=0)
    ttft_b3 = models.PositiveIntegerField(default=0)
    ttft_b4 = models.PositiveIntegerField(default=0)
    ttft_b5 = models.PositiveIntegerField(default=0)
    ttft_b6 = models.PositiveIntegerField(default=0)
    ttft_b7 = models.PositiveIntegerField(default=0)
    ttft_b8 = models.PositiveIntegerField(default=0)
    ttft_b9 = models.PositiveIntegerField(default=0)
    ttft_b10 = models.PositiveIntegerField(default=0)
    ttft_b11 = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-hour"]
        verbose_name = "hourly usage"
        verbose_name_plural = "hourly usage"
        indexes = [
            # Every staff page: all organizations over a range of hours; the roll-up replaces an hour.
            models.Index(fields=["hour"], name="hourly_usage_hour"),
            # An organization's page, its members' view, budget gauges.
            models.Index(fields=["organization", "hour"], name="hourly_usage_org_hour"),
            # A key's page and key budgets.
            models.Index(fields=["api_key", "hour"], name="hourly_usage_key_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.organization_id} {self.model_name} {self.status_class}"


class HourlyUsageDay(models.Model):
    """HourlyUsage summed per UTC day, organization, key, model and provider (endpoint and status
    class folded into requests/errors): what reads over whole UTC days use instead of 24 hours of
    rows each, so 30 and 90 day pages stay fast. Derived from HourlyUsage only, in the same
    transaction as every write of an hour (billing.hourly_rollup), so it always equals the sum
    of its day's hourly rows; readers use it for a day only when all 24 hours are clean
    (billing.usage_hourly), and only where the display time zone cuts days at UTC midnight.
    """

    day = models.DateField(help_text="The UTC day.")
    organization = models.ForeignKey("orgs.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    api_key = models.ForeignKey("orgs.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model_name = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=60, blank=True)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0, help_text="Requests in a status class other than 2xx.")
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(**ROLLUP_COST_FIELD)
    latency_ms_sum = models.BigIntegerField(default=0)
    latency_b0 = models.PositiveIntegerField(default=0)
    latency_b1 = models.PositiveIntegerField(default=0)
    latency_b2 = models.PositiveIntegerField(default=0)
    latency_b3 = models.PositiveIntegerField(default=0)
    latency_b4 = models.PositiveIntegerField(default=0)
    latency_b5 = models.PositiveIntegerField(default=0)
    latency_b6 = models.PositiveIntegerField(default=0)
    latency_b7 = models.PositiveIntegerField(default=0)
    latency_b8 = models.PositiveIntegerField(default=0)
    latency_b9 = models.PositiveIntegerField(default=0)
    latency_b10 = models.PositiveIntegerField(default=0)
    latency_b11 = models.PositiveIntegerField(default=0)
    ttft_b0 = models.PositiveIntegerField(default=0)
    ttft_b1 = models.PositiveIntegerField(default=0)
    ttft_b2 = models.PositiveIntegerField(default=0)
    ttft_b3 = models.PositiveIntegerField(default=0)
    ttft_b4 = models.PositiveIntegerField(default=0)
    ttft_b5 = models.PositiveIntegerField(default=0)
    ttft_b6 = models.PositiveIntegerField(default=0)
    ttft_b7 = models.PositiveIntegerField(default=0)
    ttft_b8 = models.PositiveIntegerField(default=0)
    ttft_b9 = models.PositiveIntegerField(default=0)
    ttft_b10 = models.PositiveIntegerField(default=0)
    ttft_b11 = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        verbose_name = "daily usage (from hours)"
        verbose_name_plural = "daily usage (from hours)"
        indexes = [
            # Staff pages over whole days (overview, CSV, staff API 1d); the roll-up replaces a day.
            models.Index(fields=["day"], name="hourly_usage_day_day"),
            # An organization's page and its budget gauges over whole days.
            models.Index(fields=["organization", "day"], name="hourly_usage_day_org_day"),
            # A key's page and key budgets over whole days.
            models.Index(fields=["api_key", "day"], name="hourly_usage_day_key_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.organization_id} {self.model_name}"


class HourlyUsageOrgDay(models.Model):
    """HourlyUsageDay without the key: per UTC day, organization, model and provider. Derived
    with it (billing.hourly_rollup), read instead of it where no key is asked for (the staff
    overview's charts, summary and latency; an organization's charts), a fifth to a tenth of
    the rows over a 90-day range."""

    day = models.DateField(help_text="The UTC day.")
    organization = models.ForeignKey("orgs.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model_name = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=60, blank=True)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0, help_text="Requests in a status class other than 2xx.")
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(**ROLLUP_COST_FIELD)
    latency_ms_sum = models.BigIntegerField(default=0)
    latency_b0 = models.PositiveIntegerField(default=0)
    latency_b1 = models.PositiveIntegerField(default=0)
    latency_b2 = models.PositiveIntegerField(default=0)
    latency_b3 = models.PositiveIntegerField(default=0)
    latency_b4 = models.PositiveIntegerField(default=0)
    latency_b5 = models.PositiveIntegerField(default=0)
    latency_b6 = models.PositiveIntegerField(default=0)
    latency_b7 = models.PositiveIntegerField(default=0)
    latency_b8 = models.PositiveIntegerField(default=0)
    latency_b9 = models.PositiveIntegerField(default=0)
    latency_b10 = models.PositiveIntegerField(default=0)
    latency_b11 = models.PositiveIntegerField(default=0)
    ttft_b0 = models.PositiveIntegerField(default=0)
    ttft_b1 = models.PositiveIntegerField(default=0)
    ttft_b2 = models.PositiveIntegerField(default=0)
    ttft_b3 = models.PositiveIntegerField(default=0)
    ttft_b4 = models.PositiveIntegerField(default=0)
    ttft_b5 = models.PositiveIntegerField(default=0)
    ttft_b6 = models.PositiveIntegerField(default=0)
    ttft_b7 = models.PositiveIntegerField(default=0)
    ttft_b8 = models.PositiveIntegerField(default=0)
    ttft_b9 = models.PositiveIntegerField(default=0)
    ttft_b10 = models.PositiveIntegerField(default=0)
    ttft_b11 = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        verbose_name = "daily usage per organization (from hours)"
        verbose_name_plural = "daily usage per organization (from hours)"
        indexes = [
            # The staff overview's charts, summary and latency over whole days; the roll-up replaces a day.
            models.Index(fields=["day"], name="hourly_usage_orgday_day"),
            # An organization's charts and summary over whole days.
            models.Index(fields=["organization", "day"], name="hourly_usage_orgday_org_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.organization_id} {self.model_name}"


class RollupHour(models.Model):
    """Which UTC hours are in HourlyUsage; the hourly twin of RollupDay (same dirty/pruned rules)."""

    hour = models.DateTimeField(unique=True)
    rolled_up_at = models.DateTimeField()
    ledger_rows = models.PositiveIntegerField(default=0)
    pruned_at = models.DateTimeField(null=True, blank=True)
    dirty = models.BooleanField(default=False)

    class Meta:
        ordering = ["-hour"]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00}"
