"""DRF authentication for gateway API keys (`Authorization: Bearer` or `x-api-key`)."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from .selectors import KeyContext, domain_organization_get_sync, key_context_get_sync, presented_key


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
            return None
        ctx = key_context_get_sync(plaintext)
        if ctx is None:
            raise exceptions.AuthenticationFailed("Invalid API key. Check the key you were issued (dm_...).")
        reason = ctx.rejection()
        if reason:
            raise exceptions.AuthenticationFailed(reason)
        owner = domain_organization_get_sync(request.META.get("HTTP_HOST", ""))
        if owner is not None and owner != ctx.organization_id:
            raise exceptions.AuthenticationFailed("This API key does not belong to the organization served at this domain.")
        return KeyPrincipal(ctx), ctx

    def authenticate_header(self, request) -> str:
        # A value here makes DRF answer 401 rather than 403 for missing credentials.
        return 'Bearer realm="api"'
