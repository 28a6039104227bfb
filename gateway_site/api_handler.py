"""A Django ASGI handler for the /api/ai/ endpoints that keeps the event loop on the event loop.

Profiling the proxy under load (py-spy, README "Performance") showed Django's stock ASGI handler
spending most of each request hopping threads, not proxying:
- every MiddlewareMixin middleware runs its hooks through sync_to_async when the view is async
  (over a dozen hops with the admin's seven middleware);
- `ThreadSensitiveContext` makes each request start a new thread pool, and the sync
  request_started/request_finished receivers and `response.close()` run in it.
The API needs no middleware (no sessions, cookies, CSRF or messages: keys authenticate every
request) and its database work runs in worker threads that check their own connections
(core.db), so this handler runs the view straight on the loop and closes the response
inline, without the request_finished signal (`_response_close`). The admin and dashboards keep
Django's full stack in the ordinary handler.
"""

from __future__ import annotations

import asyncio
import time

from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import set_script_prefix
from django.core.exceptions import RequestAborted
from django.http import HttpResponse

from core.errors import ANTHROPIC, OPENAI, ErrorCode, GatewayError, error_response, new_request_id
from core.metrics import IN_FLIGHT, OPEN_STREAMS
from orgs.hosts import BadHost, hostname_admit, request_hostname

API_PREFIX = "/api/ai/"


class ApiASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)

    async def __call__(self, scope, receive, send) -> None:
        IN_FLIGHT.inc()
        try:
            await self.handle(scope, receive, send)
        finally:
            IN_FLIGHT.dec()

    async def handle(self, scope, receive, send) -> None:
        # Django's ASGIHandler.handle, less the thread-hopping signals and the threaded close.
        refused = await _host_refusal(scope)
        if refused is not None:
            await self.send_response(refused, send)
            return
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            # Granian reports a body it cannot decode (a malformed chunk) as a disconnect in the
            # middle of the body, as it does a client that left; returning without a response
            # made it answer its own text/plain 500. Answer a 400 in the route's format instead:
            # a client that really left never reads it.
            await self._send_unreadable_body(scope, send)
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            error_response.close()
            return

        async def process_request(request, send):
            response = await self.run_get_response(request)
            if _draining():
                # nginx must stop reusing its kept-alive connections to this instance before the
                # listener closes: a POST sent on one the server is closing gets a 502 that nginx
                # may not retry elsewhere (the request was sent).
                response["Connection"] = "close"
            streams = OPEN_STREAMS if response.streaming else None
            if streams is not None:
                streams.inc()
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client went away while we were sending
            finally:
                if streams is not None:
                    streams.dec()
            return response

        # Watch for the client leaving while the view runs: a stream must stop (and be metered)
        # as soon as nobody is reading it.
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            pass
        else:
            _response_close(response)
        body_file.close()

    async def _send_unreadable_body(self, scope, send) -> None:
        error = GatewayError(
            400,
            "The request body could not be read: it ended early or its chunked transfer encoding is malformed. "
            "Send it again with a Content-Length or well-formed chunks.",
            code=ErrorCode.INVALID_REQUEST_BODY,
        )
        response = error_response(error, _route_format(scope), new_request_id())
        try:
            await self.send_response(response, send)
        except (OSError, RuntimeError, asyncio.CancelledError):
            pass  # the client is gone: nobody to tell
        finally:
            response.close()


def _response_close(response: HttpResponse) -> None:
    """`response.close()` less its request_finished signal. Django's receivers of it close the
    calling thread's database connections and caches and reset its URLconf; on the event loop
    thread there are none to close (the API's database work runs in worker threads that check
    their own connections, core.db; the cache backends' close() is a no-op), and sending it cost
    about 4% of a request's CPU. The response's own closers (a stream's metering, the upstream
    connection) run exactly as close() runs them."""
    for closer in response._resource_closers:
        try:
            closer()
        except Exception:
            pass
    response._resource_closers.clear()
    response.closed = True


async def _host_refusal(scope) -> HttpResponse | None:
    """A 400 in the route's error format when the Host is malformed or not served here.

    Django's own check (request.get_host() in CommonMiddleware) never runs on this handler, and
    Django would join two Host headers into one "a,b" value, so the raw headers are read here.
    """
    values = [value.decode("latin-1") for name, value in scope["headers"] if name == b"host"]
    try:
        await hostname_admit(request_hostname(values))
    except BadHost as exc:
        error = GatewayError(400, str(exc), code=ErrorCode.INVALID_HOST)
        return error_response(error, _route_format(scope), new_request_id())
    return None


_draining_checked = [0.0, False]  # when last checked, and the answer


def _draining() -> bool:
    """Whether SIGTERM has started this instance's drain (the flag file granian_main writes);
    looked at no more than every 0.2 s."""
    now = time.monotonic()
    if now - _draining_checked[0] >= 0.2:
        from ai_proxy.health import instance_draining

        _draining_checked[:] = [now, instance_draining()]
    return _draining_checked[1]


def _route_format(scope) -> str:
    """The error format of the route a request was sent to, before Django has routed it."""
    return ANTHROPIC if scope["path"].startswith(API_PREFIX + "anthropic/") else OPENAI


def split_by_path(site_app, api_app):
    """One ASGI callable: /api/ai/ to the lean handler, everything else to the full site."""

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX):
            await api_app(scope, receive, send)
        else:
            await site_app(scope, receive, send)

    return app
