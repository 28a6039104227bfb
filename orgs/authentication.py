"""Key authentication for every API: one set of rules, used by the proxy and by DRF views.

`key_authenticate` (async, the proxy's path) and `key_authenticate_sync` (DRF) differ only in how
they read the cached key and domain lookups; `_key_admit` decides. A refusal is the API edge's
GatewayError, rendered in the route's own format by whoever called.
"""

from __future__ import annotations

from rest_framework import authentication, exceptions

from core.errors import ErrorCode, GatewayError

from .selectors import (
    KeyContext, domain_organization_get, domain_organization_get_sync, key_context_get, key_context_get_sync,
    presented_key,
)

_MISSING = "Missing API key. Send it as `Authorization: Bearer dm_...` or `x-api-key: dm_...`."
_INVALID = "Invalid API key. Check the key you were issued (dm_...)."


def _key_present(plaintext: str | None) -> str:
    if not plaintext:
        raise GatewayError(401, _MISSING, code=ErrorCode.MISSING_API_KEY)
    return plaintext


def _key_usable(ctx: KeyContext | None) -> KeyContext:
    if ctx is None:
        raise GatewayError(401, _INVALID, code=ErrorCode.INVALID_API_KEY)
    reason = ctx.rejection()
    if reason:
        raise GatewayError(401, reason, code=ErrorCode.INVALID_API_KEY)
    return ctx


def _domain_admit(ctx: KeyContext, owner: int | None, host: str) -> KeyContext:
    # A vanity domain serves its own organization only: another tenant's key sent there is
    # refused, so a leaked key cannot be used behind someone else's brand (and logs stay clean).
    if owner is not None and owner != ctx.organization_id:
        raise GatewayError(
            401,
            f"This API key does not belong to the organization served at {host.rsplit(':', 1)[0]}.",
            code=ErrorCode.INVALID_API_KEY,
        )
    return ctx


async def key_authenticate(plaintext: str | None, host: str) -> KeyContext:
    """The usable key's context, or GatewayError 401 (missing, invalid, revoked, expired, disabled
    organization, or another organization's vanity domain)."""
    ctx = _key_usable(await key_context_get(_key_present(plaintext)))
    return _domain_admit(ctx, await domain_organization_get(host), host)


def key_authenticate_sync(plaintext: str | None, host: str) -> KeyContext:
    ctx = _key_usable(key_context_get_sync(_key_present(plaintext)))
    return _domain_admit(ctx, domain_organization_get_sync(host), host)


class KeyPrincipal:
    """What DRF's request.user is for a key: enough for IsAuthenticated, plus the key's context."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, ctx: KeyContext) -> None:
        self.key = ctx

    def __str__(self) -> str:
        return self.key.prefix


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        plaintext = presented_key(request.headers)
        if plaintext is None:
            return None  # DRF then answers 401 for views that need a key, and lets others through
        try:
            ctx = key_authenticate_sync(plaintext, request.META.get("HTTP_HOST", ""))
        except GatewayError as exc:
            # AuthenticationFailed, not the GatewayError itself: DRF then adds WWW-Authenticate,
            # and the exception handler renders it with the same code (invalid_api_key).
            raise exceptions.AuthenticationFailed(exc.message) from None
        return KeyPrincipal(ctx), ctx

    def authenticate_header(self, request) -> str:
        # A value here makes DRF answer 401 rather than 403 for missing credentials.
        return 'Bearer realm="api"'
