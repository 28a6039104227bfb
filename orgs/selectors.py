"""Reads on organizations and keys, including the request path's cached key lookup."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from django.utils import timezone

from core.versioned_cache import VersionedCache

from .hosts import hostname_of
from .keys import key_hash, key_matches, key_prefix_of
from .models import ApiKey, VanityDomain

key_cache = VersionedCache("keys")
# last_used_at is written at most this often per key, never on every request.
_LAST_USED_EVERY = timedelta(minutes=1)
_background: set[asyncio.Task] = set()


@dataclass(frozen=True)
class KeyContext:
    """Everything the request path needs about a key and its organization, without the ORM."""

    key_id: int
    prefix: str
    label: str
    environment: str
    organization_id: int
    organization_slug: str
    organization_name: str
    organization_active: bool
    # Public model ids this key may call; None means every enabled model.
    allowed_models: frozenset[str] | None
    rpm_limit: int | None
    tpm_limit: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    store_content: bool
    last_used_at: datetime | None
    # The organization's own limits, across all its keys.
    org_rpm_limit: int | None = None
    org_tpm_limit: int | None = None
    # Every budget that applies to this key's requests (its own and its organization's).
    budgets: tuple[Any, ...] = ()  # billing.budget.BudgetRule, from key_budget_rules_register

    def rejection(self, now: datetime | None = None) -> str | None:
        """Why this key cannot be used right now, or None."""
        now = now or timezone.now()
        if self.revoked_at is not None and self.revoked_at <= now:
            return "This API key has been revoked."
        if self.expires_at is not None and self.expires_at <= now:
            return "This API key has expired."
        if not self.organization_active:
            return "This API key's organization is disabled."
        return None

    def may_use(self, public_id: str) -> bool:
        return self.allowed_models is None or public_id in self.allowed_models


# Budgets are billing's, but their rules ride in the cached key context so the request path gets
# them with the key, without a lookup of its own. billing registers the reader when it loads
# (billing.apps), so orgs never imports billing.
_key_budget_rules: Callable[[ApiKey], tuple[Any, ...]] = lambda key: ()


def key_budget_rules_register(reader: Callable[[ApiKey], tuple[Any, ...]]) -> None:
    global _key_budget_rules
    _key_budget_rules = reader


def _context_from_db(plaintext: str) -> KeyContext | None:
    prefix = key_prefix_of(plaintext)
    if prefix is None:
        return None
    key = ApiKey.objects.select_related("organization").filter(prefix=prefix).first()
    if key is None or not key_matches(plaintext, key.key_hash):
        return None
    org = key.organization
    key_models = set(key.allowed_models.values_list("public_id", flat=True))
    org_models = set(org.allowed_models.values_list("public_id", flat=True))
    if key_models and org_models:
        allowed = frozenset(key_models & org_models)
    elif key_models or org_models:
        allowed = frozenset(key_models or org_models)
    else:
        allowed = None
    return KeyContext(
        key_id=key.pk,
        prefix=key.prefix,
        label=key.label,
        environment=key.environment,
        organization_id=org.pk,
        organization_slug=org.slug,
        organization_name=org.name,
        organization_active=org.is_active,
        allowed_models=allowed,
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        store_content=org.store_content,
        last_used_at=key.last_used_at,
        org_rpm_limit=org.rpm_limit,
        org_tpm_limit=org.tpm_limit,
        budgets=_key_budget_rules(key),
    )


_last_used_written: dict[int, datetime] = {}


def _touch_due(ctx: KeyContext, now: datetime) -> bool:
    last = _last_used_written.get(ctx.key_id) or ctx.last_used_at
    if last is not None and now - last < _LAST_USED_EVERY:
        return False
    _last_used_written[ctx.key_id] = now
    return True


async def key_context_get(plaintext: str) -> KeyContext | None:
    """The key's context if the key exists (usable or not), from cache when possible."""
    ctx = await key_cache.get_or_load(key_hash(plaintext), _context_from_db, plaintext)
    if ctx is not None:
        now = timezone.now()
        if _touch_due(ctx, now):
            task = asyncio.get_running_loop().create_task(
                ApiKey.objects.filter(pk=ctx.key_id).aupdate(last_used_at=now)
            )
            _background.add(task)
            task.add_done_callback(_background.discard)
    return ctx


def key_context_get_sync(plaintext: str) -> KeyContext | None:
    ctx = key_cache.get_or_load_sync(key_hash(plaintext), _context_from_db, plaintext)
    if ctx is not None:
        now = timezone.now()
        if _touch_due(ctx, now):
            ApiKey.objects.filter(pk=ctx.key_id).update(last_used_at=now)
    return ctx


def _domain_owner_from_db(hostname: str) -> int | None:
    return VanityDomain.objects.filter(hostname=hostname).values_list("organization_id", flat=True).first()


def _hostname(host: str) -> str:
    # "" for a malformed Host: the API's handler refuses those before any view runs.
    return (hostname_of(host) or "") if host else ""


async def domain_organization_get(host: str) -> int | None:
    """The organization that owns this vanity hostname, or None (cached like keys)."""
    hostname = _hostname(host)
    if not hostname:
        return None
    return await key_cache.get_or_load(("domain", hostname), _domain_owner_from_db, hostname)


def domain_organization_get_sync(host: str) -> int | None:
    hostname = _hostname(host)
    if not hostname:
        return None
    return key_cache.get_or_load_sync(("domain", hostname), _domain_owner_from_db, hostname)


def presented_key(headers) -> str | None:
    """The key from `Authorization: Bearer` or `x-api-key`, whichever is present."""
    auth = headers.get("authorization") or headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    value = headers.get("x-api-key") or headers.get("X-Api-Key")
    return value.strip() if value else None
