"""What a rate limit or a budget applies to: a whole organization, or one of its keys.

Shared-state keys of every scope of one organization carry the same Redis Cluster hash tag (the
organization id), so the one admission script can touch the key's and the organization's
counters and reservations atomically. (The script also registers the request in this process's
in-flight hash, which has no tag: see billing.admission before moving to a Redis Cluster.)
"""

from __future__ import annotations

from dataclasses import dataclass

ORGANIZATION, KEY = "organization", "key"


@dataclass(frozen=True)
class Scope:
    kind: str  # ORGANIZATION or KEY
    id: int  # the organization's id, or the key's
    organization_id: int

    @classmethod
    def organization(cls, organization_id: int) -> "Scope":
        return cls(ORGANIZATION, organization_id, organization_id)

    @classmethod
    def key(cls, key_id: int, organization_id: int) -> "Scope":
        return cls(KEY, key_id, organization_id)

    @property
    def state_prefix(self) -> str:
        """`{<organization id>}:o` or `{<organization id>}:k<key id>`: the start of every
        shared-state key of this scope (the braces are the cluster hash tag)."""
        return f"{{{self.organization_id}}}:o" if self.kind == ORGANIZATION else f"{{{self.organization_id}}}:k{self.id}"

    def describe(self) -> str:
        """How messages name it: "this organization" or "this key"."""
        return f"this {self.kind}"
