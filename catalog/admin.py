"""The operator console for the catalog: providers, models (prices editable), aliases and routes.

Every save and delete here leaves an audit row (core.audited_admin.AuditedModelAdmin), and the catalog
signals drop every instance's cached snapshot once it commits.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from core.audited_admin import AuditedModelAdmin

from .models import CatalogModel, ModelAlias, Provider, Route
from .provider_kinds import kind_choices, route_refusal


@admin.register(Provider)
class ProviderAdmin(AuditedModelAdmin):
    list_display = ("name", "kind", "base_url", "api_key_env", "secret_is_set", "enabled")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "base_url", "api_key_env")
    readonly_fields = ("secret_status", "created_at", "updated_at")
    fields = (
        "name", "kind", "base_url", "api_key_env", "secret_status", "connect_timeout_seconds", "timeout_seconds",
        "enabled", "created_at", "updated_at",
    )

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "kind":
            # The kinds are the adapters' (registered at startup), not static choices: a select of them.
            return forms.ChoiceField(choices=kind_choices, label="Kind", help_text=db_field.help_text)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(boolean=True, description="secret set")
    def secret_is_set(self, obj: Provider) -> bool:
        return obj.secret_is_set

    @admin.display(description="secret")
    def secret_status(self, obj: Provider) -> str:
        # Whether the variable is set, never its value: secrets stay in the environment.
        if not obj.pk or not obj.needs_secret:
            return "not needed" if obj.pk else "-"
        if obj.secret_is_set:
            return f"{obj.api_key_env} is set"
        return f"{obj.api_key_env} is NOT set in the gateway's environment: set it and restart"


class ModelAliasInline(admin.TabularInline):
    model = ModelAlias
    extra = 0


class RouteInlineFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        # The model's type as submitted on this same page (Route.clean sees the saved one, or none
        # for a new model): an embedding model gets no route on a provider that cannot embed.
        model_type = self.instance.model_type
        for form in self.forms:
            provider = (getattr(form, "cleaned_data", None) or {}).get("provider")
            if provider is None or form.cleaned_data.get("DELETE"):
                continue
            reason = route_refusal(provider.kind, model_type)
            if reason:
                form.add_error("provider", reason)


class RouteInline(admin.TabularInline):
    model = Route
    formset = RouteInlineFormSet
    extra = 0
    fields = ("provider", "upstream_model", "priority", "weight", "enabled", "drop_unsupported_params", "allowed_options")


@admin.register(CatalogModel)
class CatalogModelAdmin(AuditedModelAdmin):
    list_display = (
        "public_id", "display_name", "model_type", "provider_label", "input_price_per_mtok", "output_price_per_mtok",
        "cache_read_price_per_mtok", "cache_write_price_per_mtok", "enabled",
    )
    # Prices are what operators correct most often; editable straight from the list.
    list_editable = (
        "input_price_per_mtok", "output_price_per_mtok", "cache_read_price_per_mtok", "cache_write_price_per_mtok",
    )
    list_filter = ("enabled", "model_type", "provider_label", "speed_tier", "cost_tier")
    search_fields = ("public_id", "display_name", "aliases__alias")
    readonly_fields = ("created_at", "updated_at")
    inlines = (ModelAliasInline, RouteInline)
    fieldsets = (
        (None, {"fields": ("public_id", "display_name", "model_type", "provider_label", "best_for", "enabled")}),
        ("Prices (USD per million tokens)", {"fields": (
            "input_price_per_mtok", "output_price_per_mtok", "cache_read_price_per_mtok",
            "cache_write_price_per_mtok", "web_search_price_per_1k", "price_source",
        )}),
        ("Limits and tiers", {"fields": (
            "max_output_tokens", "context_window", "dimensions", "speed_tier", "cost_tier",
        )}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )


@admin.register(ModelAlias)
class ModelAliasAdmin(AuditedModelAdmin):
    list_display = ("alias", "model")
    list_select_related = ("model",)
    search_fields = ("alias", "model__public_id")


@admin.register(Route)
class RouteAdmin(AuditedModelAdmin):
    list_display = ("__str__", "model", "provider", "upstream_model", "priority", "weight", "enabled")
    list_select_related = ("model", "provider")
    list_filter = ("enabled", "provider")
    search_fields = ("model__public_id", "upstream_model", "provider__name")

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("model", "provider")
