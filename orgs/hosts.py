"""The Host header on /api/ai/: parsed strictly, checked against the hosts this gateway serves.

The vanity-domain binding (orgs.selectors.domain_organization_get) trusts the hostname, so a
Host the parser cannot read exactly (`api.acme.app:443:80`, `api.acme.app,`, `user@api.acme.app`,
two Host headers, none at all) must be refused, not read as "some other host" that skips the
binding. Allowed hosts are settings.ALLOWED_HOSTS (Django's patterns, `*` for any) plus every
registered vanity domain, so adding a domain for an organization needs no settings change.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.http.request import validate_host

# RFC 1123 labels (IDNA names arrive as their xn-- ASCII form), an optional trailing dot, an
# optional numeric port; or a bracketed IPv6 literal.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(
    rf"(?P<name>{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{{1,5}}))?", re.IGNORECASE
)


class BadHost(Exception):
    """The request's Host cannot be served; the message says why, for a 400."""


def hostname_of(host: str) -> str | None:
    """The lower-case hostname without port or trailing dot, or None when `host` is malformed."""
    match = _HOST.fullmatch(host)
    if match is None or (match["port"] and int(match["port"]) > 65535):
        return None
    name = match["name"].lower().rstrip(".")
    return name if 0 < len(name) <= 253 else None


def _shown(value: str) -> str:
    return repr(value[:100])


def request_hostname(values: list[str]) -> str:
    """The hostname from the request's Host header values (one expected). Raises BadHost."""
    if not values:
        raise BadHost("The request has no Host header; send the hostname you are calling.")
    if len(values) > 1:
        raise BadHost("The request has more than one Host header; send exactly one.")
    hostname = hostname_of(values[0])
    if hostname is None:
        raise BadHost(
            f"Malformed Host header {_shown(values[0])}: expected a hostname with an optional numeric port."
        )
    return hostname


async def hostname_admit(hostname: str) -> None:
    """Raise BadHost unless the gateway serves `hostname` (ALLOWED_HOSTS or a vanity domain)."""
    from .selectors import domain_organization_get  # selectors parses hosts with this module

    if validate_host(hostname, settings.ALLOWED_HOSTS):
        return
    if await domain_organization_get(hostname) is not None:
        return
    raise BadHost(f"Host {_shown(hostname)} is not served by this gateway.")
