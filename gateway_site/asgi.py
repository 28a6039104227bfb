"""ASGI entry point: Django for HTTP, plus the lifespan protocol so a graceful shutdown writes every
buffered usage row before the process exits (Django's own ASGI handler rejects lifespan scopes)."""

import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings")

django_application = get_asgi_application()

from billing.metering import ledger_connections_close, ledger_flush  # noqa: E402  (needs the app registry ready)

logger = logging.getLogger("gateway_site.asgi")


async def application(scope, receive, send):
    if scope["type"] != "lifespan":
        await django_application(scope, receive, send)
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await ledger_flush()
                ledger_connections_close()
            except Exception as exc:
                logger.exception("shutdown: usage ledger flush failed")
                await send({"type": "lifespan.shutdown.failed", "message": f"ledger flush failed: {type(exc).__name__}"})
                return
            await send({"type": "lifespan.shutdown.complete"})
            return
