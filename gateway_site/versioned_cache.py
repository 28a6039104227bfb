"""In-process caches that every instance drops within a second of a change anywhere.

Each cache has a version counter in shared state (Redis in production). Writers bump it after
their transaction commits (see the apps' signals); readers re-read it at most once every
GATEWAY_CACHE_CHECK_SECONDS and clear their entries when it moved. So the request path pays one
Redis GET a second per process, not a database query per request, and revocation is never
"eventually".
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from django.conf import settings
from django.db import transaction

from .db import db_call
from .shared_state import STATE_ERRORS, shared_state

logger = logging.getLogger(__name__)

_MAX_ENTRIES = 100_000
_MISSING = object()


class VersionedCache:
    def __init__(self, name: str) -> None:
        self.name = name
        self._key = f"version:{name}"
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

    def _unreachable(self, exc: BaseException) -> None:
        # Keep serving what we know rather than fail every request while Redis is down; try
        # again at the next interval. Changes made meanwhile arrive when Redis is back.
        logger.warning("shared state unreachable, serving cached %s: %s", self.name, type(exc).__name__)
        self._checked_at = time.monotonic()

    @property
    def generation(self) -> int:
        """Changes whenever the entries are dropped. Read it before loading a value from the
        database and pass it to set(): a load that raced with an invalidation is not cached."""
        return self._generation

    def _due(self) -> bool:
        return time.monotonic() - self._checked_at >= settings.GATEWAY_CACHE_CHECK_SECONDS

    async def refresh(self) -> None:
        if self._due():
            try:
                self._apply(await shared_state().get(self._key))
            except STATE_ERRORS as exc:
                self._unreachable(exc)

    def refresh_sync(self) -> None:
        if self._due():
            try:
                self._apply(shared_state().get_sync(self._key))
            except STATE_ERRORS as exc:
                self._unreachable(exc)

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
        """Bump the shared version once the current transaction commits, and drop our own copy."""

        def bump() -> None:
            self.clear()
            shared_state().incr_sync(self._key)

        transaction.on_commit(bump)
