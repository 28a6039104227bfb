"""Admin for dashboard access: organization members and staff tokens (imported by orgs.admin)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms import ModelForm

from core.time_zones import zone

from .models import OrganizationMember, StaffToken
from .services import audit_record


class OrganizationMemberForm(ModelForm):
    class Meta:
        model = OrganizationMember
        fields = ("user", "organization", "time_zone")

    def clean_user(self):
        user = self.cleaned_data["user"]
        if user.is_staff or user.is_superuser:
            raise ValidationError("Staff users see every organization already; members are non-staff users.")
        return user

    def clean_time_zone(self):
        try:
            zone(self.cleaned_data["time_zone"])
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        return self.cleaned_data["time_zone"]


@admin.register(OrganizationMember)
class OrganizationMemberAdmin(admin.ModelAdmin):
    form = OrganizationMemberForm
    list_display = ("user", "organization", "time_zone", "created_at")
    list_filter = ("organization",)
    list_select_related = ("user", "organization")
    raw_id_fields = ("user",)
    search_fields = ("user__username", "organization__slug")

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        audit_record(actor=request.user, action="member_change" if change else "member_add", obj=obj,
                     organization=obj.organization, changes={"user": obj.user.get_username()})


@admin.register(StaffToken)
class StaffTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "label", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "user", "created_at", "last_used_at")
    fields = ("prefix", "user", "label", "created_at", "last_used_at", "revoked_at")
    list_select_related = ("user",)

    def has_add_permission(self, request) -> bool:
        return False  # issued by `manage.py issue_staff_token`, which shows it once
