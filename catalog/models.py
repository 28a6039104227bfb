from __future__ import annotations

import os
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from .provider_kinds import kind_facts, kind_validate, route_refusal
from .route_options import allowed_options_problems

PRICE_FIELD = dict(
    max_digits=12, decimal_places=6, null=True, blank=True, validators=[MinValueValidator(Decimal("0"))]
)


class Provider(models.Model):
    name = models.CharField(
        max_length=60, unique=True, validators=[RegexValidator(r"^[a-z0-9][a-z0-9_-]*$", "Lowercase name.")]
    )
    # The kinds are the provider adapters' (ai_proxy.providers.ADAPTERS, registered at startup in
    # catalog.provider_kinds): no static choices, so a new adapter needs no migration here.
    kind = models.CharField(
        max_length=20, validators=[kind_validate],
        help_text="The wire format and auth it speaks: one of the gateway's provider adapters.",
    )
    base_url = models.URLField(
        blank=True,
        help_text="openai: the URL /chat/completions is appended to (https://api.openai.com/v1); "
        "anthropic: the one /v1/messages is appended to (https://api.anthropic.com).",
    )
    # Only the *name* of the variable: secrets never enter the database.
    api_key_env = models.CharField(
        max_length=100, blank=True, validators=[RegexValidator(r"^[A-Z_][A-Z0-9_]*$", "An environment variable name.")]
    )
    connect_timeout_seconds = models.FloatField(default=5.0, validators=[MinValueValidator(0.1)])
    timeout_seconds = models.FloatField(
        default=600.0, validators=[MinValueValidator(0.1)], help_text="Read timeout between bytes."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "ai_proxy_provider"  # moved from ai_proxy (catalog 0001): the table kept its name
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def needs_secret(self) -> bool:
        return not kind_facts(self.kind).offline and bool(self.api_key_env)

    @property
    def secret_is_set(self) -> bool:
        return not self.needs_secret or bool(os.environ.get(self.api_key_env))


class CatalogModel(models.Model):
    class ModelType(models.TextChoices):
        # Which endpoints may serve it: a chat model is never offered for embeddings, nor the reverse.
        CHAT = "chat", "Chat (chat/completions, messages, responses)"
        EMBEDDING = "embedding", "Embedding (/embeddings)"

    class SpeedTier(models.TextChoices):
        FASTEST = "fastest", "Fastest"
        FAST = "fast", "Fast"
        MEDIUM = "medium", "Medium"
        SLOW = "slow", "Slow"

    class CostTier(models.TextChoices):
        FREE = "free", "Free"
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        PREMIUM = "premium", "Premium"

    public_id = models.CharField(
        max_length=100, unique=True, validators=[RegexValidator(r"^[a-zA-Z0-9][a-zA-Z0-9._:-]*$", "A model id.")]
    )
    display_name = models.CharField(max_length=200)
    provider_label = models.CharField(max_length=60, help_text="Who makes it (Anthropic, OpenAI, xAI, ...).")
    best_for = models.CharField(max_length=300, blank=True)
    model_type = models.CharField(
        "type", max_length=20, choices=ModelType.choices, default=ModelType.CHAT,
        help_text="Chat models serve chat/completions, messages and responses; embedding models serve /embeddings.",
    )
    dimensions = models.PositiveIntegerField(
        null=True, blank=True, help_text="Embedding models: the size of the vectors it returns by default."
    )
    speed_tier = models.CharField(max_length=10, choices=SpeedTier.choices, default=SpeedTier.MEDIUM)
    cost_tier = models.CharField(max_length=10, choices=CostTier.choices, default=CostTier.MEDIUM)
    # USD per million tokens. A model without input and output prices cannot be called.
    input_price_per_mtok = models.DecimalField(**PRICE_FIELD)
    output_price_per_mtok = models.DecimalField(**PRICE_FIELD)
    cache_read_price_per_mtok = models.DecimalField(**PRICE_FIELD)
    cache_write_price_per_mtok = models.DecimalField(**PRICE_FIELD)
    # USD per 1,000 web searches (Anthropic's web_search server tool, OpenAI `web_search_options`).
    # Unset: no route may allow web search for this model, because the searches could not be billed.
    web_search_price_per_1k = models.DecimalField(
        **PRICE_FIELD, help_text="USD per 1,000 web searches; required before a route may allow web search."
    )
    price_source = models.CharField(max_length=300, blank=True, help_text="Where and when the prices were taken.")
    max_output_tokens = models.PositiveIntegerField(default=4096)
    context_window = models.PositiveIntegerField(default=128000)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "ai_proxy_catalogmodel"
        ordering = ["public_id"]
        verbose_name = "catalog model"

    def __str__(self) -> str:
        return self.public_id

    @property
    def is_priced(self) -> bool:
        return self.input_price_per_mtok is not None and self.output_price_per_mtok is not None

    def clean(self) -> None:
        # Refused here, where the operator is, rather than as a zero bill later: an enabled
        # model must be priced so every request through it can be metered.
        if self.enabled and not self.is_priced:
            missing = {
                name: "Required while the model is enabled: requests through it must be priced."
                for name in ("input_price_per_mtok", "output_price_per_mtok")
                if getattr(self, name) is None
            }
            raise ValidationError(missing)
        if self.pk is not None:
            # A type change must not leave routes that can no longer serve the model.
            for route in self.routes.select_related("provider"):
                reason = route_refusal(route.provider.kind, self.model_type)
                if reason:
                    raise ValidationError({"model_type": f"The route {route.provider.name}:{route.upstream_model} "
                                                         f"cannot serve it: {reason} Remove that route first."})


class ModelAlias(models.Model):
    """Other names apps already send (dated provider ids) that resolve to a catalog model."""

    model = models.ForeignKey(CatalogModel, on_delete=models.CASCADE, related_name="aliases")
    alias = models.CharField(max_length=100, unique=True)

    class Meta:
        db_table = "ai_proxy_modelalias"
        ordering = ["alias"]
        verbose_name_plural = "model aliases"

    def __str__(self) -> str:
        return f"{self.alias} → {self.model.public_id}"


class Route(models.Model):
    """One way to serve a model: a provider plus the name that provider knows it by.

    Routes are tried by ascending priority; among equal priorities, picked at random by weight.
    """

    model = models.ForeignKey(CatalogModel, on_delete=models.CASCADE, related_name="routes")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="routes")
    upstream_model = models.CharField(max_length=200)
    weight = models.PositiveIntegerField(default=100)
    priority = models.PositiveIntegerField(default=0, help_text="Lower is tried first.")
    enabled = models.BooleanField(default=True)
    drop_unsupported_params = models.BooleanField(
        default=False,
        help_text="Silently drop request parameters the provider's format has no equivalent for "
        "(otherwise the request is refused with a 400 naming them).",
    )
    # Client options that change what the provider charges are refused unless listed here
    # (see catalog.route_options for the names, ai_proxy.priced_options for what each costs).
    allowed_options = models.TextField(
        blank=True,
        help_text="Price-changing client options this route accepts, separated by spaces, commas or new lines: "
        "anthropic-beta:<value> (native Anthropic routes only; prompt-caching-2024-07-31 is always allowed), "
        "service_tier:<value> (OpenAI-format routes; billed at this model's prices, so give priority its own "
        "catalog model), server_tool:web_search and web_search_options (billed per search at the model's web "
        "search price), server_tool:web_fetch, inference_geo:<value>, speed:<value>, cache_ttl:1h.",
    )

    class Meta:
        db_table = "ai_proxy_route"
        ordering = ["model", "priority", "-weight", "id"]
        constraints = [
            models.UniqueConstraint(fields=["model", "provider", "upstream_model"], name="route_unique_per_provider")
        ]

    def __str__(self) -> str:
        return f"{self.model.public_id} → {self.provider.name}:{self.upstream_model}"

    def clean(self) -> None:
        if self.provider_id and self.model_id:
            reason = route_refusal(self.provider.kind, self.model.model_type)
            if reason:
                raise ValidationError({"provider": reason})
        problems = allowed_options_problems(
            self.allowed_options,
            provider_kind=self.provider.kind if self.provider_id else None,
            web_search_priced=self.model_id is not None and self.model.web_search_price_per_1k is not None,
        )
        if problems:
            raise ValidationError({"allowed_options": problems})
