"""The request path every proxied operation shares: authenticate, parse, validate, resolve, admit,
forward (through the route's provider adapter, translated by (operation body format, provider
dialect)), stream back, meter.

What differs per endpoint is its Operation (ai_proxy.operations); per provider kind, its adapter
(ai_proxy.providers); per format pair, its Translation (ai_proxy.translations). Nothing here
branches on any of them by name. Failover happens only before the first byte reaches the client;
after that, failures end the stream with an error event in the client's format.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import TYPE_CHECKING

import httpx
import orjson
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone

from billing.admission import Admission, admit
from billing.budget import BudgetUnavailable, OverBudget, worst_case_cost
from billing.pricing import prices_from_model
from billing.ratelimit import RateLimited
from catalog.selectors import ModelEntry, RouteEntry, catalog_get
from core.client_ip import client_ip
from core.errors import ANTHROPIC, ErrorCode, GatewayError, error_response, new_request_id, request_id_headers
from core.metrics import route_failover_count
from core.request_body import request_json_body
from orgs.authentication import key_authenticate
from orgs.selectors import KeyContext, presented_key

from .call import ProxyCall
from .metering import call_cost, call_inflight_begin, call_lost_row, call_meter
from .priced_options import priced_options_requested, routes_allowing
from .providers import ADAPTERS
from .providers.base import ProviderAdapter, UnsupportedOperation
from .routing import route_failed, route_succeeded, routes_for
from .sse import SSEDecoder, SSEEvent
from .tokens import image_tokens_max, tokens_for_chars, tokens_for_text
from .translations import Framer, TranslationMissing, translation_for
from .upstream import provider_error_message, response_body, upstream_send

if TYPE_CHECKING:
    from .operations import Operation
    from .translations import Translation

logger = logging.getLogger(__name__)

# Provider answers that say nothing about the client's request: try the next route.
# 401/403/404 mean the *gateway's* credentials or route are wrong (a bad secret, an upstream
# model name the provider doesn't know); passing them on would blame the client's own key.
_RETRYABLE = {401, 403, 404, 408, 409, 429}
_GATEWAY_FAULT = {401, 403, 404}


def _client_ip(request: HttpRequest) -> str | None:
    return client_ip(request.META)  # X-Forwarded-For only from GATEWAY_TRUSTED_PROXIES


async def request_authenticate(request: HttpRequest) -> KeyContext:
    return await key_authenticate(presented_key(request.headers), request.META.get("HTTP_HOST", ""))


async def _resolve(call: ProxyCall) -> ModelEntry:
    catalog = await catalog_get()
    name = call.body["model"]
    model = catalog.resolve(name)
    if model is None:
        raise GatewayError(
            404,
            f"The model `{name}` does not exist or you do not have access to it.",
            code=ErrorCode.MODEL_NOT_FOUND,
            param="model",
        )
    if not call.key.may_use(model.public_id):
        raise GatewayError(
            403,
            f"This API key may not use the model `{name}`. Ask the gateway operator to allow it.",
            code=ErrorCode.MODEL_NOT_ALLOWED,
            param="model",
        )
    if model.model_type != call.operation.model_type:
        from .operations import EMBEDDING, MODEL_TYPE_ENDPOINTS  # operations imports this module

        kind = "an embedding" if model.model_type == EMBEDDING else f"a {model.model_type}"
        endpoint = MODEL_TYPE_ENDPOINTS.get(model.model_type, "the endpoint for its type")
        raise GatewayError(
            400,
            f"The model `{model.public_id}` is {kind} model; {call.operation.label} serves "
            f"{call.operation.model_type} models. Use {endpoint} for it.",
            code=ErrorCode.MODEL_WRONG_TYPE,
            param="model",
        )
    if call.operation.billed and not model.is_priced:
        raise GatewayError(
            503,
            f"The model `{model.public_id}` has no price configured, so it cannot be metered; "
            "the operator must set its prices in the catalog.",
            code=ErrorCode.MODEL_NOT_PRICED,
        )
    return model


async def _admit(call: ProxyCall) -> Admission:
    """Admit the call against every rate limit and budget (billing.admission), or raise the
    GatewayError the client sees. An unbilled operation (count_tokens): rate limits only."""
    budgets = call.operation.billed
    try:
        call.admission = await admit(
            call.key, started_at=call.started_at,
            prompt_tokens=call.worst_tokens[0] if budgets else _prompt_tokens_bound(call),
            worst_case=call.worst_case, budgets=budgets,
            in_flight=(call.request_id, partial(call_lost_row, call)) if budgets else None,
        )
    except RateLimited as exc:
        # retry-after within 60 s, so every SDK honours it and retries after the window.
        raise GatewayError(
            429,
            exc.message,
            code=ErrorCode.RATE_LIMIT_EXCEEDED,
            error_type="rate_limit_error",
            headers={
                "retry-after": str(exc.status.reset_in()),
                **({} if exc.retryable else {"x-should-retry": "false"}),
                **exc.status.headers(call.client_format),
            },
        ) from None
    except OverBudget as exc:
        raise GatewayError(
            429,
            exc.message,
            code=ErrorCode.BUDGET_EXCEEDED,
            error_type="insufficient_quota",
            anthropic_error_type="billing_error",
            # Retrying cannot help until the operator acts: tell the SDKs not to (retry-after
            # is still sent, as every 429 should carry one).
            headers={"x-should-retry": "false", "retry-after": "60"},
        ) from None
    except BudgetUnavailable as exc:
        # Our outage, not the client's fault: the SDKs retry a 503 with x-should-retry: true.
        raise GatewayError(
            503, exc.message, code=ErrorCode.BUDGET_UNAVAILABLE, headers={"x-should-retry": "true", "retry-after": "5"}
        ) from None
    call.rate_limits = call.admission.limits
    return call.admission


def _prompt_tokens_bound(call: ProxyCall) -> int:
    """The most input tokens the request can cost on any of its model's routes (admission only)."""
    model = call.model
    return call.operation.input_tokens_bound(
        call.body,
        image_tokens=image_tokens_max(route.upstream_model for route in model.routes),
        unbounded_tokens=model.context_window,
    )


def _worst_case(call: ProxyCall) -> None:
    """The most this request can cost: reserved against a hard budget, and charged if the request
    is lost in flight. The one place it is computed: an upper bound on the prompt (byte length,
    images at their maximum) and the output exactly as the upstream will be asked for it
    (`Operation.max_output`: the body is read for its own format only)."""
    max_output, choices = call.operation.max_output(call.body, call.model)
    prompt_tokens = _prompt_tokens_bound(call)
    call.worst_case = worst_case_cost(
        prices=prices_from_model(call.model), prompt_tokens=prompt_tokens, max_output_tokens=max_output,
        choices=choices,
    )
    call.worst_tokens = (prompt_tokens, max_output * max(choices, 1))


def response_headers(call: ProxyCall) -> dict[str, str]:
    """Headers every answer of an admitted call carries (request id, model, provider, limits)."""
    headers = request_id_headers(call.request_id)
    if call.model is not None:
        headers["x-gateway-model"] = call.model.public_id
    if call.route is not None:
        headers["x-gateway-provider"] = call.route.provider.name
    if call.rate_limits is not None:
        headers.update(call.rate_limits.headers(call.client_format))
    return headers


class _RouteFailed(Exception):
    def __init__(
        self, summary: str, status: int | None = None, retry_after: str | None = None, *, unusable: bool = False
    ) -> None:
        super().__init__(summary)
        self.summary = summary
        self.status = status
        self.retry_after = retry_after
        self.unusable = unusable  # the route cannot serve this operation at all: no cool-down


def _route_plan(call: ProxyCall, route: RouteEntry) -> tuple[ProviderAdapter, str, "Translation"]:
    """The route's adapter, its path key for the operation, and the translation to its dialect;
    _RouteFailed(unusable) naming what is missing, never a body in another dialect."""
    adapter = ADAPTERS.get(route.provider.kind)
    try:
        if adapter is None:  # an adapter removed after the catalog snapshot was built
            raise UnsupportedOperation(f"provider kind `{route.provider.kind}` has no adapter")
        translation = translation_for(call.operation.body_format, adapter.dialect)
        path_key = call.operation.upstream_paths.get(adapter.dialect)
        if path_key is None or not adapter.supports(path_key):
            raise UnsupportedOperation(
                f"provider kind `{route.provider.kind}` has no endpoint for {call.operation.label} "
                f"(upstream path `{path_key or 'none for the ' + adapter.dialect + ' dialect'}`)"
            )
    except (UnsupportedOperation, TranslationMissing) as exc:
        logger.error("route %s cannot serve request_id=%s: %s", route.id, call.request_id, exc)
        raise _RouteFailed(f"{route.provider.name}: cannot serve this request ({exc})", unusable=True) from None
    return adapter, path_key, translation


async def _attempt(call: ProxyCall, route: RouteEntry, request: HttpRequest) -> HttpResponse:
    """One route. Raises _RouteFailed for failures worth failing over on, GatewayError for the rest."""
    adapter, path_key, translation = _route_plan(call, route)
    body = translation.request(call, route)
    stream = call.streamed
    try:
        # Anthropic headers come only from Anthropic-format clients, already checked (priced_options).
        client_headers = request.headers if call.client_format == ANTHROPIC else None
        response = await upstream_send(route, body, stream=True, client_headers=client_headers, path_key=path_key)
    except httpx.TimeoutException:
        raise _RouteFailed(f"{route.provider.name}: timed out") from None
    except httpx.TransportError as exc:
        raise _RouteFailed(f"{route.provider.name}: connection failed ({type(exc).__name__})") from None

    if response.status_code >= 400:
        try:
            raw = await response_body(response)
        except httpx.TransportError:
            raw = b""
        finally:
            await response.aclose()
        message = provider_error_message(response.status_code, raw)
        if response.status_code in _RETRYABLE or response.status_code >= 500:
            if response.status_code in _GATEWAY_FAULT:
                # The provider's text may quote the gateway's secret (OpenAI echoes part of a bad
                # key): log it for the operator, never send it to the client.
                logger.error(
                    "provider %s refused the gateway (HTTP %s) request_id=%s: %s",
                    route.provider.name, response.status_code, call.request_id, message[:500],
                )
                summary = f"{route.provider.name}: HTTP {response.status_code} (the provider refused the gateway's credentials or model; see the gateway log)"
            else:
                summary = f"{route.provider.name}: HTTP {response.status_code} ({message[:200]})"
            raise _RouteFailed(summary, status=response.status_code, retry_after=response.headers.get("retry-after"))
        # The client's own mistake, as the provider saw it: not retried, shown in the client's format.
        raise GatewayError(
            response.status_code,
            f"The provider rejected the request: {message}",
            code=ErrorCode.UPSTREAM_INVALID_REQUEST if response.status_code < 500 else ErrorCode.UPSTREAM_ERROR,
        )

    if not stream:
        try:
            raw = await response_body(response)
        except httpx.TimeoutException:
            raise _RouteFailed(f"{route.provider.name}: timed out reading the response") from None
        except httpx.TransportError as exc:
            raise _RouteFailed(f"{route.provider.name}: response failed ({type(exc).__name__})") from None
        finally:
            await response.aclose()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _RouteFailed(f"{route.provider.name}: answered with invalid JSON") from None
        if not isinstance(data, dict):
            raise _RouteFailed(f"{route.provider.name}: answered with a JSON {type(data).__name__}, not an object")
        call.usage = adapter.usage(data)
        payload = translation.response(call, data)
        call.succeeded()
        if call.key.store_content:
            call.completion_text = (translation.text or _completion_text)(payload)
        if call.usage is None:
            call.usage = _estimated_usage(call, payload)
        headers = response_headers(call)
        cost = call_cost(call)
        if cost is not None:
            headers["x-gateway-cost-usd"] = format(cost, "f")
        out = HttpResponse(orjson.dumps(payload), content_type="application/json")
        for name, value in headers.items():
            out[name] = value
        return out

    # Streaming: read up to the first whole event before committing to this route, so a
    # provider that accepts the connection and then fails, or opens with an error event,
    # still fails over: nothing has reached the client yet.
    iterator = response.aiter_raw()
    decoder = adapter.stream_decoder()
    events: list[SSEEvent] = []
    try:
        while not events:
            try:
                events = decoder.feed(await iterator.__anext__())
            except StopAsyncIteration:
                events = decoder.flush()
                if not events:
                    raise _RouteFailed(f"{route.provider.name}: empty stream") from None
                break
    except httpx.TimeoutException:
        await response.aclose()
        raise _RouteFailed(f"{route.provider.name}: timed out before the first event") from None
    except httpx.TransportError as exc:
        await response.aclose()
        raise _RouteFailed(f"{route.provider.name}: stream failed ({type(exc).__name__})") from None
    except BaseException:
        await response.aclose()
        raise
    opening_error = adapter.stream_error(events[0])
    if opening_error is not None:
        await response.aclose()
        raise _RouteFailed(f"{route.provider.name}: stream opened with an error ({opening_error[:200]})", status=503)

    call.succeeded()
    framer = translation.framer(call)
    framer.collect = call.key.store_content
    out = StreamingHttpResponse(
        _relay(call, response, decoder, events, iterator, framer), content_type="text/event-stream"
    )
    # If the client leaves before the first chunk is sent, the generator never starts and its
    # `finally` never runs: the response's close() meters the request and frees the upstream.
    out._resource_closers.append(lambda: _close_unstarted(call, response))
    out["cache-control"] = "no-cache"
    out["x-accel-buffering"] = "no"  # nginx must not buffer the stream
    for name, value in response_headers(call).items():
        out[name] = value
    return out


def _completion_text(payload: dict) -> str:
    if payload.get("type") == "message":
        return "".join(b.get("text", "") for b in payload.get("content") or [] if b.get("type") == "text")
    choices = payload.get("choices") or [{}]
    return (choices[0].get("message") or {}).get("content") or ""


def _estimated_usage(call: ProxyCall, payload: dict | None = None, text_chars: int = 0) -> dict:
    call.tokens_estimated = True
    completion = tokens_for_chars(text_chars)
    output = payload.get("choices") or payload.get("content") if payload is not None else None
    if output:  # an answer without output (embeddings) generated nothing
        completion = tokens_for_text(orjson.dumps(output).decode())
    return {
        "prompt_tokens": call.operation.input_tokens(call.body),
        "completion_tokens": completion,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
    }


def _close_unstarted(call: ProxyCall, response: httpx.Response) -> None:
    if call.relay_started:
        return
    call.client_left()
    call.usage = _estimated_usage(call)
    call_meter(call)
    asyncio.get_running_loop().create_task(response.aclose())


async def _relay(
    call: ProxyCall, response: httpx.Response, decoder: SSEDecoder, events: list[SSEEvent], iterator, framer: Framer
):
    call.relay_started = True
    try:
        while True:
            for event in events:
                out = framer.feed(event)
                if out:
                    if call.ttft_ms is None:
                        call.ttft_ms = call.elapsed_ms()
                    yield out
            try:
                events = decoder.feed(await iterator.__anext__())
            except StopAsyncIteration:
                break
        for event in decoder.flush():
            out = framer.feed(event)
            if out:
                yield out
        tail = framer.end()
        if not framer.complete:
            call.stream_broke()
        if tail:
            yield tail
    except (httpx.TransportError, httpx.StreamError) as exc:
        call.stream_broke()
        name = call.route.provider.name if call.route else "provider"
        yield framer.error(f"The provider ({name}) failed mid-stream: {type(exc).__name__}. The response is incomplete.")
    except (asyncio.CancelledError, GeneratorExit):
        call.client_left()  # as for a client gone before the response: the ledger says who ended it
        raise
    finally:
        if framer.upstream_error and not call.error_type:
            call.stream_broke()
        call.usage = framer.usage
        if call.usage is None or not framer.complete:
            # The provider's final count never came: estimate what was generated, keep whatever
            # the provider did say (Anthropic reports input up front), and flag the row.
            estimated = _estimated_usage(call, text_chars=framer.text_chars)
            if call.usage:
                estimated = {
                    **call.usage,
                    "prompt_tokens": call.usage["prompt_tokens"] or estimated["prompt_tokens"],
                    "completion_tokens": max(call.usage["completion_tokens"], estimated["completion_tokens"]),
                }
            call.usage = estimated
        if framer.collect:
            call.completion_text = "".join(framer.collected)
        call_meter(call)
        try:
            await response.aclose()
        except BaseException:  # closing a dead connection must not mask the real outcome
            pass


def _all_failed(model: ModelEntry, failures: list[_RouteFailed]) -> GatewayError:
    summary = "; ".join(f.summary for f in failures)
    if failures and all(f.status == 429 for f in failures):
        # Every provider is rate-limiting us: say so as a 429 the SDKs back off and retry on.
        retry_after = next((f.retry_after for f in failures if f.retry_after and f.retry_after.isdigit()), "1")
        retry_after = str(min(int(retry_after), 60))
        return GatewayError(
            429,
            f"Every route for model `{model.public_id}` is rate limited by its provider: {summary}.",
            code=ErrorCode.UPSTREAM_RATE_LIMITED,
            headers={"retry-after": retry_after},
        )
    return GatewayError(
        502, f"Every route for model `{model.public_id}` failed: {summary}.", code=ErrorCode.UPSTREAM_UNAVAILABLE
    )


async def _forward(call: ProxyCall, request: HttpRequest) -> HttpResponse:
    """The default `Operation.serve`: the model's routes in order, failing over before the first
    byte, each through its adapter and translation."""
    routes = routes_allowing(call.options, await routes_for(call.model), call.model)
    failures: list[_RouteFailed] = []
    for route in routes:
        if failures:  # moving on from the route that just failed
            route_failover_count(call.route.provider.name, call.route.id)
        call.route = route
        try:
            response = await _attempt(call, route, request)
        except _RouteFailed as failure:
            failures.append(failure)
            logger.warning("route failed request_id=%s %s", call.request_id, failure.summary)
            if not failure.unusable:
                await route_failed(route)
            continue
        await route_succeeded(route)
        return response
    raise _all_failed(call.model, failures)


async def proxy_handle(request: HttpRequest, operation: "Operation") -> HttpResponse:
    """Serve one request for `operation` (ai_proxy.operations): the one path every proxied
    endpoint takes. Always answers in the operation's error format; always meters one row once
    a key was accepted."""
    call = ProxyCall(
        operation=operation,
        request_id=new_request_id(),
        client_format=operation.error_format,
        endpoint=operation.name,
        started_at=timezone.now(),
        t0=time.perf_counter(),
        client_ip=_client_ip(request),
    )
    if not operation.billed:
        # Zero tokens billed: the row records the call (and refunds any TPM estimate), never a cost.
        call.usage = {"prompt_tokens": 0, "completion_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0}
    try:
        call.key = await request_authenticate(request)
        call.body = request_json_body(request)
        if isinstance(call.body.get("model"), str):
            call.requested_model = call.body["model"]
        call.body = operation.validate(call.body)
        call.streamed = operation.streams(call.body)
        call.model = await _resolve(call)
        if operation.billed:
            call.options = priced_options_requested(call.body, request.headers, call.client_format)
            routes_allowing(call.options, list(call.model.routes), call.model)  # 400 before admission
            _worst_case(call)
        await _admit(call)
        if operation.billed:
            await call_inflight_begin(call)
        response = await (operation.serve or _forward)(call, request)
        if not call.streamed:
            call_meter(call)
        return response
    except asyncio.CancelledError:
        # The client left before the response started (an SDK timeout, a closed tab): the
        # request still happened and may have cost money upstream, so it is metered.
        call.client_left()
        if call.route is not None and call.usage is None:
            # It reached a provider, which bills the prompt; what it generated is unknown.
            call.usage = _estimated_usage(call)
        call_meter(call)
        raise
    except GatewayError as exc:
        call.failed(exc)
        call_meter(call)
        response = error_response(exc, call.client_format, call.request_id)
        if call.model is not None:
            response["x-gateway-model"] = call.model.public_id
        return response
    except Exception:
        logger.exception("unexpected error request_id=%s", call.request_id)
        call.failed_internally()
        call_meter(call)
        return error_response(
            GatewayError(500, f"Internal gateway error (request {call.request_id}). The operator can find it in the logs."),
            call.client_format,
            call.request_id,
        )
