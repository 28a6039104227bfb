"""The entry point of the audit trail for apps that sit below orgs.

The AuditLog table is orgs' (a row may name its organization), but the catalog, which orgs
depends on, must audit its admin edits and commands too. Importing orgs from the catalog would
point the layering upwards, so orgs plugs its writer in here when the app registry is ready
(orgs.apps.OrgsConfig.ready) and lower apps call `audit_record` from this module.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from django.db import models


class _Writer(Protocol):
    def __call__(
        self, *, actor: Any, action: str, obj: models.Model, organization: Any = None,
        changes: dict[str, Any] | None = None,
    ) -> Any: ...


_writer: _Writer | None = None
_organization_of: Callable[[models.Model], Any] = lambda obj: None


def audit_backend_register(*, writer: _Writer, organization_of: Callable[[models.Model], Any]) -> None:
    """Called once by orgs at start-up: how rows are written and which organization an object is in."""
    global _writer, _organization_of
    _writer = writer
    _organization_of = organization_of


def audit_record(
    *, actor: Any, action: str, obj: models.Model, organization: Any = None, changes: dict[str, Any] | None = None
) -> Any:
    if _writer is None:  # a missing audit row must never pass silently
        raise RuntimeError("No audit writer registered: is `orgs` in INSTALLED_APPS?")
    return _writer(actor=actor, action=action, obj=obj, organization=organization, changes=changes)


def audit_organization(obj: models.Model) -> Any:
    """The organization an audited object belongs to (itself, for an organization), or None."""
    return _organization_of(obj)
