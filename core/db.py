"""Database access from the async request path.

The proxy's rare database reads (a key or catalog cache miss) run in worker threads through
`db_call`, never on the event loop. Those threads live outside Django's request cycle, so each
call first does what request_started would: drop connections that are broken or past
CONN_MAX_AGE, so a restarted PostgreSQL never leaves a thread with a dead connection.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

T = TypeVar("T")


def _fresh(fn: Callable[..., T], *args: Any) -> T:
    close_old_connections()
    return fn(*args)


async def db_call(fn: Callable[..., T], *args: Any) -> T:
    return await sync_to_async(_fresh, thread_sensitive=False)(fn, *args)
