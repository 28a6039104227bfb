"""The operator console for organizations, their domains and keys, and the audit log.

Every operator write leaves an audit row in the same transaction: key issue/revoke/rotate through
orgs.services, every other admin save or delete through AuditedModelAdmin (also used by the
catalog admin in catalog/admin.py; it lives in core/audited_admin.py). A key's plaintext exists
only in the response to the POST that created it: it is rendered there directly, never stored in
the session, messages or a redirect.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html

from core.audited_admin import AuditedModelAdmin

from .forms import ApiKeyIssueForm, ApiKeyRotateForm
from .models import ApiKey, AuditLog, Organization, VanityDomain
from .services import IssuedKey, api_key_issue, api_key_revoke, api_key_rotate


# --- organizations ------------------------------------------------------------------------


class VanityDomainInline(admin.TabularInline):
    model = VanityDomain
    extra = 0
    fields = ("hostname", "created_at")
    readonly_fields = ("created_at",)


class ApiKeyInline(admin.TabularInline):
    """Keys are listed here but only issued through the issue-key form: a key row without its
    plaintext having been shown once is useless."""

    model = ApiKey
    extra = 0
    fields = ("prefix", "last_four", "environment", "label", "status", "expires_at", "revoked_at", "last_used_at")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("rotated_to")


@admin.register(Organization)
class OrganizationAdmin(AuditedModelAdmin):
    list_display = ("slug", "name", "is_active", "domain_list", "active_keys")
    list_filter = ("is_active",)
    search_fields = ("slug", "name", "domains__hostname")
    filter_horizontal = ("allowed_models",)
    readonly_fields = ("created_at", "updated_at")
    # billing.admin adds the budget and alert-channel inlines, spend and alert views to this page.
    inlines = (VanityDomainInline, ApiKeyInline)
    fieldsets = (
        (None, {"fields": ("slug", "name", "is_active", "created_at", "updated_at")}),
        ("Models", {"fields": ("allowed_models",)}),
        # Limits on all the organization's keys together (each key may have its own, tighter).
        ("Rate limits", {"fields": ("rpm_limit", "tpm_limit")}),
        # Budget rows and alert channels are the inlines below; the zone sets when periods start.
        ("Budgets", {"fields": ("timezone",)}),
        ("Privacy", {"fields": ("store_content",)}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        now = timezone.now()
        usable = Q(api_keys__revoked_at__isnull=True) & (
            Q(api_keys__expires_at__isnull=True) | Q(api_keys__expires_at__gt=now)
        )
        return (
            super().get_queryset(request)
            .annotate(_active_keys=Count("api_keys", filter=usable, distinct=True))
            .prefetch_related("domains")
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple:
        # The slug is inside every key already issued; renaming it would orphan their prefixes.
        return (*self.readonly_fields, "slug") if obj else self.readonly_fields

    @admin.display(description="domains")
    def domain_list(self, obj: Organization) -> str:
        return ", ".join(d.hostname for d in obj.domains.all())

    @admin.display(description="active keys", ordering="_active_keys")
    def active_keys(self, obj: Organization) -> int:
        return obj._active_keys


@admin.register(VanityDomain)
class VanityDomainAdmin(AuditedModelAdmin):
    list_display = ("hostname", "organization", "created_at")
    list_select_related = ("organization",)
    search_fields = ("hostname", "organization__slug", "organization__name")
    list_filter = ("organization",)
    readonly_fields = ("created_at",)


# --- keys ---------------------------------------------------------------------------------


class KeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("rotating", "Rotating (in grace)"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        not_revoked = Q(revoked_at__isnull=True) | Q(revoked_at__gt=now)
        not_expired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        in_grace = Q(expires_at__isnull=False, rotated_to__isnull=False)
        match self.value():
            case "revoked":
                return queryset.filter(revoked_at__lte=now)
            case "expired":
                return queryset.filter(not_revoked, expires_at__lte=now)
            case "rotating":
                return queryset.filter(not_revoked, not_expired, in_grace)
            case "active":
                return queryset.filter(not_revoked, not_expired).exclude(in_grace)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedModelAdmin):
    list_display = (
        "__str__", "organization", "environment", "label", "status", "expires_at", "revoked_at", "last_used_at",
        "created_at",
    )
    list_select_related = ("organization", "rotated_to")
    list_filter = (KeyStatusFilter, "environment", "organization")
    search_fields = ("prefix", "label", "organization__slug", "organization__name")
    date_hierarchy = "created_at"
    filter_horizontal = ("allowed_models",)
    readonly_fields = (
        "organization", "environment", "prefix", "last_four", "key_hash", "status", "created_by", "created_at",
        "revoked_at", "last_used_at", "rotated_from", "rotated_to_link",
    )
    fieldsets = (
        (None, {"fields": ("organization", "environment", "label", "status")}),
        ("Identity (the plaintext is never stored)", {"fields": ("prefix", "last_four", "key_hash")}),
        ("Limits", {"fields": ("allowed_models", "rpm_limit", "tpm_limit", "expires_at")}),
        ("History", {"fields": ("created_by", "created_at", "last_used_at", "revoked_at", "rotated_from",
                                "rotated_to_link")}),
    )
    actions = ("revoke_keys", "rotate_keys")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Keys are revoked, never deleted: the audit log and the usage ledger keep pointing at them.
        return False

    @admin.display(description="rotated to")
    def rotated_to_link(self, obj: ApiKey) -> str:
        new = getattr(obj, "rotated_to", None)
        if new is None:
            return "-"
        return format_html('<a href="../../{}/change/">{}</a>', new.pk, new)

    # Issuing replaces the add form: the service makes the secret, the page shows it once.
    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = ApiKeyIssueForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    issued = api_key_issue(
                        organization=data["organization"],
                        environment=data["environment"],
                        label=data["label"],
                        models=list(data["models"]),
                        rpm_limit=data["rpm_limit"],
                        tpm_limit=data["tpm_limit"],
                        expires_at=data["expires_at"],
                        actor=request.user,
                    )
                except ValueError as exc:
                    form.add_error(None, str(exc))
                else:
                    return self._shown_once(request, "API key issued", [{"issued": issued, "old_key": None}])
        else:
            form = ApiKeyIssueForm(initial={"organization": request.GET.get("organization")})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Issue an API key",
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/orgs/apikey/issue_key.html", context)

    def _shown_once(self, request: HttpRequest, title: str, items: list[dict], errors: list[str] = ()) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "items": items,
            "errors": list(errors),
        }
        response = TemplateResponse(request, "admin/orgs/apikey/key_shown_once.html", context)
        # Neither the browser nor a proxy may keep a copy of the page that holds the secret.
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke selected keys (immediately, on every instance)", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoked = sum(api_key_revoke(api_key=key, actor=request.user) for key in queryset)
        skipped = queryset.count() - revoked
        note = f" ({skipped} already revoked)" if skipped else ""
        self.message_user(request, f"Revoked {revoked} key(s){note}.", messages.SUCCESS)

    @admin.action(description="Rotate selected keys (new key; the old one works for a grace period)", permissions=["change"])
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        queryset = queryset.select_related("organization", "rotated_to")
        form = ApiKeyRotateForm(request.POST if request.POST.get("confirm") == "yes" else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Rotate API keys",
                "queryset": queryset,
                "form": form,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/orgs/apikey/rotate_confirm.html", context)
        grace = timedelta(hours=float(form.cleaned_data["grace_hours"]))
        items, errors = [], []
        for key in queryset:
            try:
                issued: IssuedKey = api_key_rotate(api_key=key, grace=grace, actor=request.user)
            except ValueError as exc:
                errors.append(str(exc))
                continue
            items.append({"issued": issued, "old_key": ApiKey.objects.get(pk=key.pk)})
        return self._shown_once(request, f"Rotated {len(items)} key(s)", items, errors)


# --- audit log ----------------------------------------------------------------------------


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """Read-only: the record of who changed what cannot itself be changed from the console."""

    list_display = ("created_at", "actor_label", "action", "object_type", "object_repr", "organization")
    list_select_related = ("organization",)
    list_filter = ("action", "object_type", "organization")
    search_fields = ("actor_label", "object_repr", "object_id", "organization__slug")
    date_hierarchy = "created_at"
    # The log only grows; a full COUNT(*) on every page view is wasted work.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

from . import admin_members  # noqa: E402,F401  (dashboard access: members, staff tokens)
