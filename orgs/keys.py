"""The API key format: dm_<org-slug>_<env>_<secret>.

The secret is 40 base62 characters (238 bits). The first 8 secret characters go into the
visible prefix, which names the key in the admin, in logs and in commands without revealing it.
Only the SHA-256 of the whole key is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

_ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 40
PREFIX_SECRET_CHARS = 8


@dataclass(frozen=True)
class NewKey:
    plaintext: str
    prefix: str
    key_hash: str
    last_four: str


def key_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def key_generate(org_slug: str, environment: str) -> NewKey:
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))
    plaintext = f"dm_{org_slug}_{environment}_{secret}"
    return NewKey(
        plaintext=plaintext,
        prefix=f"dm_{org_slug}_{environment}_{secret[:PREFIX_SECRET_CHARS]}",
        key_hash=key_hash(plaintext),
        last_four=secret[-4:],
    )


def key_prefix_of(plaintext: str) -> str | None:
    """The stored prefix a presented key would have, or None if it is not shaped like our keys."""
    if not plaintext.startswith("dm_") or len(plaintext) > 200:
        return None
    parts = plaintext.split("_", 3)
    if len(parts) != 4 or len(parts[3]) != SECRET_LENGTH:
        return None
    return f"dm_{parts[1]}_{parts[2]}_{parts[3][:PREFIX_SECRET_CHARS]}"


def key_matches(plaintext: str, stored_hash: str) -> bool:
    return hmac.compare_digest(key_hash(plaintext), stored_hash)
