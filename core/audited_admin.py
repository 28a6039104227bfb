"""The admin's audit trail: every add, change and delete made through an AuditedModelAdmin (its
inlines included) leaves an audit row naming the operator, with old and new values.

In core because the catalog admin (below orgs) audits too; the rows are written through
core.audit, which orgs plugs its AuditLog into.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.db import models, transaction
from django.db.models import QuerySet
from django.forms import BaseFormSet, ModelForm
from django.http import HttpRequest

from .audit import audit_organization, audit_record


def _jsonable(value: Any, field: models.Field | None = None) -> Any:
    """A value as the audit row's JSON keeps it: money and times as exact strings, never floats."""
    if isinstance(value, Decimal) and isinstance(field, models.DecimalField):
        # Same scale for old and new ("2.500000" -> "3.500000"), whatever the operator typed.
        return str(value.quantize(Decimal(1).scaleb(-field.decimal_places)))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, (list, tuple, set, frozenset, QuerySet)):
        return sorted(str(v) for v in value)
    return str(value)


def form_changes(form: ModelForm, before: models.Model | None) -> dict[str, Any]:
    """What an admin form changed: {field: {"old": ..., "new": ...}}, or {field: new} for a new row.

    `before` is the row as the database had it before the save (None when creating); many-to-many
    fields are still unsaved at that point, so their old value is read from it too.
    """
    changes: dict[str, Any] = {}
    opts = form._meta.model._meta
    for name in form.changed_data:
        new = form.cleaned_data.get(name)
        try:
            field = opts.get_field(name)
        except FieldDoesNotExist:  # a form-only field: nothing stored, nothing to compare
            field = None
        if before is None or field is None:
            changes[name] = _jsonable(new, field)
            continue
        old = list(getattr(before, name).all()) if field.many_to_many else getattr(before, name)
        if _jsonable(old, field) != _jsonable(new, field):
            changes[name] = {"old": _jsonable(old, field), "new": _jsonable(new, field)}
    return changes


class AuditedModelAdmin(admin.ModelAdmin):
    """Records every add, change and delete made through this admin (inlines included) in an
    audit row naming the operator. The admin's change, list-edit and delete views already run in
    a transaction, so the row commits or rolls back with the change itself."""

    # Operators paste hosts without a scheme; https is the only sane guess for a provider or webhook.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def save_model(self, request: HttpRequest, obj: models.Model, form: ModelForm, change: bool) -> None:
        before = type(obj)._default_manager.filter(pk=obj.pk).first() if change else None
        changes = form_changes(form, before)
        super().save_model(request, obj, form, change)
        if change and not changes:
            return
        audit_record(
            actor=request.user,
            action="change" if change else "create",
            obj=obj,
            organization=audit_organization(obj),
            changes=changes,
        )

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        # Recorded first: after the delete the object has no primary key left to name.
        audit_record(actor=request.user, action="delete", obj=obj, organization=audit_organization(obj))
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        # The bulk delete action is not wrapped in a transaction by the admin; the audit rows
        # and the deletes must land together.
        with transaction.atomic(using=queryset.db):
            for obj in queryset:
                audit_record(actor=request.user, action="delete", obj=obj, organization=audit_organization(obj))
            super().delete_queryset(request, queryset)

    def save_formset(self, request: HttpRequest, form: ModelForm, formset: BaseFormSet, change: bool) -> None:
        before: dict[Any, models.Model] = {}
        for inline_form in formset.initial_forms:
            obj = inline_form.instance
            if obj.pk is None:
                continue
            if formset.can_delete and formset._should_delete_form(inline_form):
                audit_record(actor=request.user, action="delete", obj=obj, organization=audit_organization(obj))
            elif inline_form.has_changed():
                before[obj.pk] = type(obj)._default_manager.get(pk=obj.pk)
        pending = {
            inline_form.instance.pk: form_changes(inline_form, before[inline_form.instance.pk])
            for inline_form in formset.initial_forms
            if inline_form.instance.pk in before
        }
        super().save_formset(request, form, formset, change)
        for inline_form in formset.initial_forms:
            obj = inline_form.instance
            if obj.pk in pending and pending[obj.pk]:
                audit_record(
                    actor=request.user, action="change", obj=obj,
                    organization=audit_organization(obj), changes=pending[obj.pk],
                )
        for obj in formset.new_objects:
            new_form = next(f for f in formset.extra_forms if f.instance is obj)
            audit_record(
                actor=request.user, action="create", obj=obj,
                organization=audit_organization(obj), changes=form_changes(new_form, None),
            )
