"""Writes on organizations and keys. Every state change leaves an audit row in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from .keys import key_generate
from .models import ApiKey, AuditLog, Organization, VanityDomain


def _actor_fields(actor: AbstractBaseUser | str | None) -> dict[str, Any]:
    if actor is None:
        return {"actor": None, "actor_label": "system"}
    if isinstance(actor, str):
        return {"actor": None, "actor_label": actor}
    return {"actor": actor, "actor_label": actor.get_username()}


def audit_record(
    *,
    actor: AbstractBaseUser | str | None,
    action: str,
    obj: models.Model,
    organization: Organization | None = None,
    changes: dict[str, Any] | None = None,
) -> AuditLog:
    return AuditLog.objects.create(
        **_actor_fields(actor),
        action=action,
        object_type=obj._meta.label,
        object_id=str(obj.pk),
        object_repr=str(obj)[:300],
        organization=organization,
        changes=changes or {},
    )


def audit_organization(obj: models.Model) -> Organization | None:
    """The organization an audited object belongs to (registered with core.audit)."""
    if isinstance(obj, Organization):
        return obj
    org = getattr(obj, "organization", None)
    return org if isinstance(org, Organization) else None


@transaction.atomic
def organization_create(
    *,
    slug: str,
    name: str,
    domains: Iterable[str] = (),
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    actor: AbstractBaseUser | str | None = None,
) -> Organization:
    """A new organization with its vanity domains (budgets: billing.services.organization_with_budget_create)."""
    org = Organization(slug=slug, name=name, rpm_limit=rpm_limit, tpm_limit=tpm_limit)
    org.full_clean()
    org.save()
    for host in domains:
        domain = VanityDomain(organization=org, hostname=host.strip().lower())
        domain.full_clean()
        domain.save()
    audit_record(
        actor=actor,
        action="create",
        obj=org,
        organization=org,
        changes={"name": name, "domains": list(domains), "rpm_limit": rpm_limit, "tpm_limit": tpm_limit},
    )
    return org


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    plaintext: str  # shown once to the operator, then gone


@transaction.atomic
def api_key_issue(
    *,
    organization: Organization,
    environment: str = ApiKey.Environment.PROD,
    label: str = "",
    models: Iterable[Any] = (),
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    expires_at: datetime | None = None,
    actor: AbstractBaseUser | str | None = None,
    rotated_from: ApiKey | None = None,
) -> IssuedKey:
    if environment not in ApiKey.Environment.values:
        raise ValueError(f"environment must be one of {', '.join(ApiKey.Environment.values)}")
    models = list(models)
    org_models = set(organization.allowed_models.values_list("pk", flat=True))
    if org_models and any(m.pk not in org_models for m in models):
        outside = sorted(m.public_id for m in models if m.pk not in org_models)
        raise ValueError(f"models not allowed for organization {organization.slug}: {', '.join(outside)}")
    new = key_generate(organization.slug, environment)
    key = ApiKey.objects.create(
        organization=organization,
        environment=environment,
        label=label,
        prefix=new.prefix,
        key_hash=new.key_hash,
        last_four=new.last_four,
        created_by=actor if actor is not None and not isinstance(actor, str) else None,
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
        expires_at=expires_at,
        rotated_from=rotated_from,
    )
    if models:
        key.allowed_models.set(models)
    audit_record(
        actor=actor,
        action="issue_key",
        obj=key,
        organization=organization,
        changes={
            "environment": environment,
            "label": label,
            "models": sorted(m.public_id for m in models),
            "rpm_limit": rpm_limit,
            "tpm_limit": tpm_limit,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return IssuedKey(api_key=key, plaintext=new.plaintext)


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: AbstractBaseUser | str | None = None) -> bool:
    """Revoke now. Returns False if the key was already revoked."""
    key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if key.revoked_at is not None:
        return False
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    api_key.revoked_at = key.revoked_at
    audit_record(actor=actor, action="revoke_key", obj=key, organization=key.organization)
    return True


@transaction.atomic
def api_key_rotate(
    *,
    api_key: ApiKey,
    grace: timedelta | None = None,
    actor: AbstractBaseUser | str | None = None,
) -> IssuedKey:
    """Issue a replacement with the same settings; the old key keeps working for `grace`, then stops."""
    key = ApiKey.objects.select_for_update().select_related("organization").get(pk=api_key.pk)
    if not key.is_usable():
        raise ValueError(f"key {key.prefix} is {key.status} and cannot be rotated")
    if hasattr(key, "rotated_to"):
        raise ValueError(f"key {key.prefix} was already rotated to {key.rotated_to.prefix}")
    if grace is None:
        grace = timedelta(hours=settings.GATEWAY_ROTATION_GRACE_HOURS)
    issued = api_key_issue(
        organization=key.organization,
        environment=key.environment,
        label=key.label,
        models=list(key.allowed_models.all()),
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        expires_at=key.expires_at,
        actor=actor,
        rotated_from=key,
    )
    grace_end = timezone.now() + grace
    key.expires_at = min(grace_end, key.expires_at) if key.expires_at else grace_end
    key.save(update_fields=["expires_at"])
    audit_record(
        actor=actor,
        action="rotate_key",
        obj=key,
        organization=key.organization,
        changes={"replaced_by": issued.api_key.prefix, "old_key_expires_at": key.expires_at.isoformat()},
    )
    return issued
