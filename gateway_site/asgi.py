"""ASGI entry point: Django for HTTP, plus the lifespan protocol so a graceful shutdown writes every
buffered usage row before the process exits (Django's own ASGI handler rejects lifespan scopes)."""

import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings")

site_application = get_asgi_application()

from .api_handler import ApiASGIHandler, split_by_path  # noqa: E402

django_application = split_by_path(site_application, ApiASGIHandler())

from billing.metering import (  # noqa: E402  (needs the app registry ready)
    ledger_connections_close, ledger_flush, ledger_journal_close, ledger_start,
)

logger = logging.getLogger("gateway_site.asgi")


async def application(scope, receive, send):
    if scope["type"] != "lifespan":
        await django_application(scope, receive, send)
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # Rows and requests in flight left by a process that died (SIGKILL, OOM) go to the
            # ledger before this one serves.
            await ledger_start()
            from . import background

            background.periodic_start()  # the embedded default's stand-in for beat (alert scans)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                # Requests that just finished may still be handing their rows to the buffer.
                from ai_proxy.metering import metering_drain

                await metering_drain()
                await ledger_flush()
                ledger_journal_close()
                ledger_connections_close()
                from ai_proxy.upstream import upstream_close

                await upstream_close()
            except Exception as exc:
                logger.exception("shutdown: usage ledger flush failed")
                await send({"type": "lifespan.shutdown.failed", "message": f"ledger flush failed: {type(exc).__name__}"})
                return
            await send({"type": "lifespan.shutdown.complete"})
            return
