"""Operator forms for the admin: issuing a key and rotating keys. The writes happen in orgs.services."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.admin import widgets as admin_widgets
from django.utils import timezone

from catalog.models import CatalogModel

from .models import ApiKey, Organization


class ApiKeyIssueForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.filter(is_active=True))
    environment = forms.ChoiceField(choices=ApiKey.Environment.choices, initial=ApiKey.Environment.PROD)
    label = forms.CharField(max_length=200, required=False, help_text="Who or what uses the key, e.g. 'web server'.")
    models = forms.ModelMultipleChoiceField(
        queryset=CatalogModel.objects.filter(enabled=True),
        required=False,
        widget=admin_widgets.FilteredSelectMultiple("models", is_stacked=False),
        help_text="Empty means every model the organization may use.",
    )
    rpm_limit = forms.IntegerField(min_value=1, required=False, label="RPM limit", help_text="Requests per minute.")
    tpm_limit = forms.IntegerField(min_value=1, required=False, label="TPM limit", help_text="Tokens per minute.")
    expires_at = forms.SplitDateTimeField(
        required=False, widget=admin_widgets.AdminSplitDateTime, help_text="UTC. Empty means no expiry."
    )

    def clean_expires_at(self) -> datetime | None:
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return value

    def clean(self) -> dict:
        data = super().clean()
        org, models = data.get("organization"), data.get("models")
        if org is not None and models:
            # Checked here too (the service refuses it as well) so the operator gets a form error.
            org_models = set(org.allowed_models.values_list("pk", flat=True))
            outside = sorted(m.public_id for m in models if org_models and m.pk not in org_models)
            if outside:
                self.add_error("models", f"Not allowed for {org.slug}: {', '.join(outside)}.")
        return data


class ApiKeyRotateForm(forms.Form):
    grace_hours = forms.DecimalField(
        min_value=Decimal("0"),
        max_value=Decimal("720"),
        decimal_places=2,
        label="Grace period (hours)",
        help_text="How long the old key keeps working after the new one is issued.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["grace_hours"].initial = Decimal(str(settings.GATEWAY_ROTATION_GRACE_HOURS))
