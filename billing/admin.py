from __future__ import annotations

import csv
import datetime as dt

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.forms import BaseFormSet, ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property

from catalog.models import CatalogModel
from core.audited_admin import form_changes
from orgs.admin import OrganizationAdmin
from orgs.models import ApiKey, Organization
from orgs.services import audit_record

from .alerts import alert_channel_secret_rotate, alert_redeliver, alert_test_send, money
from .models import AlertChannel, AlertDelivery, Budget, BudgetAlert, DailyUsage, RollupDay, UsageRecord
from .selectors import USAGE_DATE_MAX, USAGE_DATE_MIN, BudgetStatus, budget_statuses, usage_groups
from .services import utc_today

# The changelist shows "more than this many" instead of counting the whole ledger.
_COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """COUNT(*) over a LIMITed subquery: bounded work however big the ledger grows."""

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[:_COUNT_CAP].count()


class ModelNameFilter(admin.SimpleListFilter):
    # Choices from the catalog, not SELECT DISTINCT over the ledger.
    title = "model"
    parameter_name = "model_name"

    def lookups(self, request, model_admin):
        return [(m, m) for m in CatalogModel.objects.order_by("public_id").values_list("public_id", flat=True)]

    def queryset(self, request, queryset):
        return queryset.filter(model_name=self.value()) if self.value() else queryset


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status_class"

    def lookups(self, request, model_admin):
        return [("ok", "2xx success"), ("4xx", "4xx client error"), ("429", "429 limited"), ("5xx", "5xx provider/server")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "ok":
            return queryset.filter(status__lt=400)
        if value == "4xx":
            return queryset.filter(status__gte=400, status__lt=500)
        if value == "429":
            return queryset.filter(status=429)
        if value == "5xx":
            return queryset.filter(status__gte=500)
        return queryset


class ReadOnlyAdmin(admin.ModelAdmin):
    """Billing records are history: viewable, never added, edited or deleted by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at", "organization", "api_key", "model_name", "endpoint", "streamed", "status",
        "prompt_tokens", "completion_tokens", "tokens_estimated", "cost", "latency_ms",
    )
    list_filter = ("organization", "api_key", ModelNameFilter, StatusFilter, "endpoint", "streamed", "tokens_estimated")
    list_select_related = ("organization", "api_key")
    search_fields = ("=request_id",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 100
    ordering = ("-created_at",)


def usage_csv_response(groups, filename: str) -> HttpResponse:
    """CSV of usage per organization, day and model (keys summed together)."""
    from orgs.models import Organization

    merged: dict[tuple, list] = {}
    for g in groups:
        row = merged.setdefault((g.organization_id, g.day, g.model_name), [0, 0, 0, 0, 0, 0, 0, 0])
        for i, value in enumerate(
            (g.requests, g.error_requests, g.prompt_tokens, g.completion_tokens, g.cache_read_tokens,
             g.cache_write_tokens, g.total_tokens, g.cost)
        ):
            row[i] += value
    slugs = dict(Organization.objects.filter(pk__in={k[0] for k in merged}).values_list("pk", "slug"))
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(
        ["organization", "day", "model", "requests", "error_requests", "prompt_tokens", "completion_tokens",
         "cache_read_tokens", "cache_write_tokens", "total_tokens", "cost_usd"]
    )
    for (org_id, day, model), values in sorted(merged.items(), key=lambda i: (slugs.get(i[0][0], ""), i[0][1], i[0][2])):
        writer.writerow([_cell(slugs.get(org_id, "")), day.isoformat(), _cell(model), *values[:7], format(values[7], "f")])
    return response


# A cell starting with one of these is a formula to Excel, LibreOffice and Sheets. Model names
# are whatever clients sent, so an operator opening the export must never run one.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    list_display = ("day", "organization", "api_key", "model_name", "requests", "error_requests",
                    "prompt_tokens", "completion_tokens", "cost")
    list_filter = ("organization", ModelNameFilter)
    list_select_related = ("organization", "api_key")
    date_hierarchy = "day"
    actions = ["export_csv"]

    def get_urls(self):
        extra = [path("export.csv", self.admin_site.admin_view(self.export_view), name="billing_usage_export")]
        return extra + super().get_urls()


    @admin.action(description="Export selected as CSV (organization, day, model)")
    def export_csv(self, request, queryset):
        from .selectors import UsageGroup

        groups = [
            UsageGroup(
                organization_id=d.organization_id, day=d.day, api_key_id=d.api_key_id, model_name=d.model_name,
                requests=d.requests, error_requests=d.error_requests, prompt_tokens=d.prompt_tokens,
                completion_tokens=d.completion_tokens, cache_read_tokens=d.cache_read_tokens,
                cache_write_tokens=d.cache_write_tokens, cost=d.cost,
            )
            for d in queryset
        ]
        return usage_csv_response(groups, "usage.csv")

    def export_view(self, request):
        """/admin/billing/dailyusage/export.csv?from_date=&to_date=&organization=<slug>: includes
        days not rolled up yet (today), read from the ledger."""
        from orgs.models import Organization

        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        today = utc_today()
        try:
            from_date = dt.date.fromisoformat(request.GET.get("from_date") or today.replace(day=1).isoformat())
            to_date = dt.date.fromisoformat(request.GET.get("to_date") or today.isoformat())
        except ValueError:
            return HttpResponse("from_date and to_date must be YYYY-MM-DD", status=400, content_type="text/plain")
        for name, value in (("from_date", from_date), ("to_date", to_date)):
            if not USAGE_DATE_MIN <= value <= USAGE_DATE_MAX:
                return HttpResponse(
                    f"{name} must be between {USAGE_DATE_MIN} and {USAGE_DATE_MAX}", status=400, content_type="text/plain"
                )
        org_id = None
        if request.GET.get("organization"):
            org_id = Organization.objects.filter(slug=request.GET["organization"]).values_list("pk", flat=True).first()
            if org_id is None:
                return HttpResponse("unknown organization", status=400, content_type="text/plain")
        groups = usage_groups(from_date=from_date, to_date=to_date, organization_id=org_id)
        return usage_csv_response(groups, f"usage-{from_date}-{to_date}.csv")


@admin.register(RollupDay)
class RollupDayAdmin(ReadOnlyAdmin):
    list_display = ("day", "rolled_up_at", "ledger_rows", "pruned_at")
    date_hierarchy = "day"



# --- budgets and alerts (shown on the organization page) ------------------------------------


class BudgetInline(admin.TabularInline):
    """Edited on the organization page; its audited save (core.audited_admin.AuditedModelAdmin) records
    every change with the operator's name."""

    model = Budget
    extra = 0
    fields = ("api_key", "amount_usd", "period", "mode", "thresholds")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "api_key":
            # Only this organization's keys (the page's object id is in the URL).
            org_id = request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
            kwargs["queryset"] = ApiKey.objects.filter(organization_id=org_id) if org_id else ApiKey.objects.none()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class AlertChannelInline(admin.TabularInline):
    """A new webhook channel gets a signing secret on save, shown once on the page that follows."""

    model = AlertChannel
    extra = 0
    fields = ("kind", "target", "enabled", "signing_secret", "created_at")
    readonly_fields = ("signing_secret", "created_at")

    @admin.display(description="signing secret")
    def signing_secret(self, obj: AlertChannel) -> str:
        if obj.kind != AlertChannel.Kind.WEBHOOK:
            return "-"
        return "set (rotate to see a new one)" if obj.secret else "none yet"


def budget_status_text(statuses: list[BudgetStatus]) -> str:
    """ "month: $3.20 of $10.00 (32.00%)" per budget, for the organization list."""
    parts = []
    for status in statuses:
        percent = f"{status.percent_used}%" if status.percent_used is not None else "-"
        parts.append(f"{status.budget.period}: ${money(status.spent)} of ${status.budget.amount_usd} ({percent})")
    return "; ".join(parts) or "-"


def organization_budget_statuses_for(organizations, now: dt.datetime) -> dict[int, list[BudgetStatus]]:
    """Each listed organization's own budgets with this period's spend: two queries for the page
    (the budgets, then one aggregate per distinct window), not one per row."""
    budgets = (
        Budget.objects.filter(organization__in=[o.pk for o in organizations], api_key__isnull=True)
        .select_related("organization")
        .order_by("organization_id", "period")
    )
    by_org: dict[int, list[BudgetStatus]] = {}
    for status in budget_statuses(budgets, now):
        by_org.setdefault(status.budget.organization_id, []).append(status)
    return by_org


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "organization", "budget", "type", "threshold_percent", "spent_usd", "percent_used",
                    "window_key")
    list_select_related = ("organization", "budget__organization", "budget__api_key")
    list_filter = ("type", "organization")
    actions = ["redeliver"]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # Needed for the redeliver action; the fields themselves stay read-only.
        return request.user.has_perm("billing.change_budgetalert")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Redeliver selected alerts to every enabled channel", permissions=["change"])
    def redeliver(self, request: HttpRequest, queryset) -> None:
        queued = sum(alert_redeliver(alert=alert) for alert in queryset)
        self.message_user(request, f"Queued {queued} delivery(ies).")


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "alert", "channel", "attempt", "status", "response_code", "error")
    list_select_related = ("alert", "channel")
    list_filter = ("status",)


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    list_display = ("organization", "kind", "target", "enabled", "created_at")
    list_select_related = ("organization",)
    list_filter = ("kind", "enabled")
    actions = ["rotate_secret"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # added on the organization page, where a new webhook's secret is shown once

    def get_readonly_fields(self, request, obj=None):
        return ("organization", "kind", "created_at")

    def save_model(self, request, obj, form, change) -> None:
        before = type(obj)._default_manager.filter(pk=obj.pk).first() if change else None
        changes = form_changes(form, before)
        super().save_model(request, obj, form, change)
        if changes:
            audit_record(actor=request.user, action="change", obj=obj, organization=obj.organization, changes=changes)

    @admin.action(description="Rotate the signing secret of selected webhooks (shown once)", permissions=["change"])
    def rotate_secret(self, request: HttpRequest, queryset):
        items = [
            (channel, alert_channel_secret_rotate(channel=channel, actor=request.user))
            for channel in queryset.filter(kind=AlertChannel.Kind.WEBHOOK).select_related("organization")
        ]
        return webhook_secrets_shown_once(request, self.admin_site, items)


def webhook_secrets_shown_once(request: HttpRequest, admin_site, items: list[tuple[AlertChannel, str]]):
    """The page that shows new webhook signing secrets, once: rendered as the response to the POST
    that made them, never stored in the session or a message, never cached."""
    from django.template.response import TemplateResponse
    from django.utils.cache import add_never_cache_headers

    context = {**admin_site.each_context(request), "opts": AlertChannel._meta, "title": "Webhook signing secret",
               "items": items}
    response = TemplateResponse(request, "admin/billing/alertchannel/secret_shown_once.html", context)
    add_never_cache_headers(response)
    return response


# The organization page shows its budgets, spend and alerts, which are billing's. orgs sits below
# billing and registers the plain OrganizationAdmin; billing replaces it with this subclass, so
# orgs never imports billing and the operator still gets one page per organization.
admin.site.unregister(Organization)


@admin.register(Organization)
class OrganizationBillingAdmin(OrganizationAdmin):
    list_display = (*OrganizationAdmin.list_display, "budget_this_period")
    inlines = (*OrganizationAdmin.inlines, BudgetInline, AlertChannelInline)

    def get_changelist_instance(self, request: HttpRequest):
        changelist = super().get_changelist_instance(request)
        # Spend of the page's organizations at once, not a query per row; the rows rendered are
        # these very instances, so each carries its figures.
        statuses = organization_budget_statuses_for(changelist.result_list, timezone.now())
        for org in changelist.result_list:
            org._budget_statuses = statuses.get(org.pk, [])
        return changelist

    @admin.display(description="budget this period (spent of amount)")
    def budget_this_period(self, obj: Organization) -> str:
        return budget_status_text(getattr(obj, "_budget_statuses", []))

    def get_urls(self):
        urls = [
            path("<path:object_id>/send-test-alert/", self.admin_site.admin_view(self.send_test_alert_view),
                 name="orgs_organization_send_test_alert"),
            path("<path:object_id>/alerts/<int:alert_id>/redeliver/", self.admin_site.admin_view(self.redeliver_view),
                 name="orgs_organization_redeliver_alert"),
        ]
        return urls + super().get_urls()

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None):
        extra_context = {
            **(extra_context or {}),
            "alert_history": BudgetAlert.objects.filter(organization_id=object_id).select_related(
                "budget__api_key")[:50] if object_id.isdigit() else [],
            "delivery_log": AlertDelivery.objects.filter(alert__organization_id=object_id).select_related(
                "alert", "channel")[:50] if object_id.isdigit() else [],
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _organization_for_post(self, request: HttpRequest, object_id: str) -> Organization:
        obj = self.get_object(request, object_id)
        if request.method != "POST" or obj is None or not self.has_change_permission(request, obj):
            raise PermissionDenied
        return obj

    def send_test_alert_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        org = self._organization_for_post(request, object_id)
        results = alert_test_send(organization=org)
        if not results:
            self.message_user(request, "No enabled alert channel to send to.", messages.WARNING)
        for channel, outcome in results:
            if outcome.ok:
                self.message_user(request, f"Test alert delivered to {channel}.", messages.SUCCESS)
            else:
                self.message_user(request, f"Test alert to {channel} failed: {outcome.error}", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:orgs_organization_change", args=[org.pk]))

    def redeliver_view(self, request: HttpRequest, object_id: str, alert_id: int) -> HttpResponse:
        org = self._organization_for_post(request, object_id)
        alert = BudgetAlert.objects.filter(organization=org, pk=alert_id).first()
        if alert is None:
            raise PermissionDenied
        queued = alert_redeliver(alert=alert)
        audit_record(actor=request.user, action="redeliver_alert", obj=alert, organization=org)
        self.message_user(request, f"Alert {alert.payload['id']} queued for {queued} channel(s).", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:orgs_organization_change", args=[org.pk]))

    def save_formset(self, request: HttpRequest, form: ModelForm, formset: BaseFormSet, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        if formset.model is AlertChannel:
            # New webhooks got a signing secret on save: the response shows it, once.
            request._new_webhook_secrets = [
                (c, c.secret) for c in formset.new_objects if c.kind == AlertChannel.Kind.WEBHOOK
            ]

    def _secrets_or(self, request: HttpRequest, response: HttpResponse, obj: Organization) -> HttpResponse:
        items = getattr(request, "_new_webhook_secrets", None)
        if not items:
            return response
        shown = webhook_secrets_shown_once(request, self.admin_site, items)
        shown.context_data["done_url"] = reverse("admin:orgs_organization_change", args=[obj.pk])
        return shown

    def response_add(self, request: HttpRequest, obj: Organization, post_url_continue: str | None = None):
        return self._secrets_or(request, super().response_add(request, obj, post_url_continue), obj)

    def response_change(self, request: HttpRequest, obj: Organization):
        return self._secrets_or(request, super().response_change(request, obj), obj)
