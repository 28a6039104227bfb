"""The real client's address behind reverse proxies.

`X-Forwarded-For` is written by whoever sends it, so it is read only when the direct peer is one of
GATEWAY_TRUSTED_PROXIES (nginx on the same machine, by default). Each trusted proxy appends the
address it received the request from; walking the list from the right, the first address that is
not a trusted proxy is the client. Anything further left was supplied by the client and is ignored,
so a client cannot choose the address its requests are billed and logged under.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks_parse(values: Iterable[str], *, setting: str) -> tuple[Network, ...]:
    """IPs and CIDRs as networks; raises ValueError naming the setting for a malformed entry."""
    out = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{setting}: {value!r} is not an IP address or CIDR network") from None
    return tuple(out)


@lru_cache(maxsize=4096)
def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
    return getattr(address, "ipv4_mapped", None) or address


def address_in(value: str | None, networks: tuple[Network, ...]) -> bool:
    address = _address(value) if value else None
    return address is not None and any(address in net for net in networks)


def client_ip(meta: Mapping[str, str]) -> str | None:
    """The client's address for a request's META (REMOTE_ADDR, HTTP_X_FORWARDED_FOR)."""
    peer = meta.get("REMOTE_ADDR") or None
    trusted = settings.GATEWAY_TRUSTED_PROXIES
    if not peer or not trusted or not address_in(peer, trusted):
        return peer
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if not forwarded:
        return peer
    client = peer
    for hop in reversed(forwarded.split(",")):
        address = _address(hop)
        if address is None:
            break  # garbage can only come from the client's side of the chain: stop at the last proxy
        client = str(address)
        if not any(address in net for net in trusted):
            break
    return client
