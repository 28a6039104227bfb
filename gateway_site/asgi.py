"""ASGI entry point: Django for HTTP, plus the lifespan protocol so a graceful shutdown writes every
buffered usage row before the process exits (Django's own ASGI handler rejects lifespan scopes)."""

import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings")

site_application = get_asgi_application()

from .api_handler import ApiASGIHandler, split_by_path  # noqa: E402

django_application = split_by_path(site_application, ApiASGIHandler())

from billing.metering import ledger_connections_close, ledger_flush  # noqa: E402  (needs the app registry ready)

logger = logging.getLogger("gateway_site.asgi")


def _periodic_start() -> None:
    # Without a broker nothing runs beat: the hourly roll-ups the dashboards read run here.
    from django.conf import settings

    from billing.hourly_rollup import usage_rollup_hours

    from .background import periodic_start

    periodic_start("usage-rollup-hours", settings.GATEWAY_ROLLUP_SECONDS, usage_rollup_hours)


async def application(scope, receive, send):
    if scope["type"] != "lifespan":
        await django_application(scope, receive, send)
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _periodic_start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                # Requests that just finished may still be handing their rows to the buffer.
                from ai_proxy.metering import metering_drain

                await metering_drain()
                await ledger_flush()
                ledger_connections_close()
                from ai_proxy.upstream import upstream_close

                await upstream_close()
            except Exception as exc:
                logger.exception("shutdown: usage ledger flush failed")
                await send({"type": "lifespan.shutdown.failed", "message": f"ledger flush failed: {type(exc).__name__}"})
                return
            await send({"type": "lifespan.shutdown.complete"})
            return
