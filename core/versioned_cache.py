"""In-process caches that every process and instance drops within a second of a change anywhere.

Each cache has a version in the database (core.CacheVersion): the one store that every process of
every deployment shares, the embedded default included, where a `manage.py revoke_key` in another
process must reach the running server too. Writers replace it with a new random token after
their transaction commits (see the apps' signals); readers re-read it at most once every
GATEWAY_CACHE_CHECK_SECONDS (one primary-key SELECT in a worker thread) and clear their entries
when it changed. So the request path pays one tiny query a second per process and cache, not a
lookup per request, and revocation is never "eventually".

Tokens, not counters: a counter that restarted could climb back to a value a process still has
cached, and that process would keep trusting entries older than the change.

If the version cannot be read (the database is down) the entries are kept: every change is a
database write, so nothing can have changed that this process could learn about; the outage is
logged once and the next interval tries again.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from .db import db_call
from .outages import Outage

version_outage = Outage(
    "The database (cache versions)",
    "cached API keys and catalog are served as they were; keys not cached yet cannot be checked.",
)

_MAX_ENTRIES = 100_000
_MISSING = object()


class VersionedCache:
    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: dict[Any, Any] = {}
        self._version: str | None = None
        self._checked_at = float("-inf")
        self._generation = 0

    def _apply(self, version: str | None) -> None:
        if version != self._version:
            self._entries.clear()
            self._generation += 1
            self._version = version
        self._checked_at = time.monotonic()

    def _read_version(self) -> str | None:
        from .models import CacheVersion  # imported late: apps import this module before the registry is ready

        return CacheVersion.objects.filter(name=self.name).values_list("token", flat=True).first()

    def _write_version(self) -> None:
        from .models import CacheVersion

        # One upsert: concurrent writers each leave a token nobody has cached yet.
        CacheVersion.objects.bulk_create(
            [CacheVersion(name=self.name, token=uuid.uuid4().hex, changed_at=timezone.now())],
            update_conflicts=True, unique_fields=["name"], update_fields=["token", "changed_at"],
        )

    @property
    def generation(self) -> int:
        """Changes whenever the entries are dropped. Read it before loading a value from the
        database and pass it to set(): a load that raced with an invalidation is not cached."""
        return self._generation

    def _due(self) -> bool:
        return time.monotonic() - self._checked_at >= settings.GATEWAY_CACHE_CHECK_SECONDS

    def _read(self) -> tuple[bool, str | None]:
        """(True, the current version), or (False, None) if the database cannot say."""
        try:
            version = self._read_version()
        except DatabaseError as exc:
            version_outage.failed(exc, f"reading the {self.name} cache version")
            return False, None
        version_outage.succeeded()
        return True, version

    async def refresh(self) -> None:
        if self._due():
            # Marked first: requests arriving while the read is in flight don't each start one.
            self._checked_at = time.monotonic()
            read, version = await db_call(self._read)
            if read:
                self._apply(version)

    def refresh_sync(self) -> None:
        if self._due():
            self._checked_at = time.monotonic()
            read, version = self._read()
            if read:
                self._apply(version)

    def get(self, key: Any, default: Any = None) -> Any:
        return self._entries.get(key, default)

    def set(self, key: Any, value: Any, generation: int | None = None) -> None:
        if generation is not None and generation != self._generation:
            return  # loaded before an invalidation we have since seen: possibly stale
        if len(self._entries) >= _MAX_ENTRIES:
            # A flood of unknown keys must not grow memory without bound.
            self._entries.clear()
        self._entries[key] = value

    async def get_or_load(self, key: Any, load: Callable[..., Any], *args: Any) -> Any:
        """The cached value, or `load(*args)` run in a worker thread (it may query the database)
        and cached unless an invalidation arrived meanwhile."""
        await self.refresh()
        value = self._entries.get(key, _MISSING)
        if value is _MISSING:
            generation = self._generation
            value = await db_call(load, *args)
            self.set(key, value, generation)
        return value

    def get_or_load_sync(self, key: Any, load: Callable[..., Any], *args: Any) -> Any:
        self.refresh_sync()
        value = self._entries.get(key, _MISSING)
        if value is _MISSING:
            generation = self._generation
            value = load(*args)
            self.set(key, value, generation)
        return value

    def clear(self) -> None:
        self._entries.clear()
        self._generation += 1
        self._checked_at = float("-inf")

    def invalidate(self) -> None:
        """Give the shared version a new token once the current transaction commits, and drop
        our own copy."""

        def bump() -> None:
            self.clear()
            self._write_version()

        transaction.on_commit(bump)
