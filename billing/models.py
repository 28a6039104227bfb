from __future__ import annotations

from django.db import models

from ai_proxy.models import PRICE_FIELD

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
    endpoint = models.CharField(max_length=10, choices=Endpoint.choices)
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

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return str(self.day)
