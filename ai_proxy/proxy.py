"""The request path for both chat endpoints: authenticate, parse, validate, resolve, route,
forward (translating when the route's provider speaks the other format), stream back, meter.

Client format is the endpoint's (`openai` for /chat/completions, `anthropic` for /messages);
the upstream dialect is the route provider's (`mock` speaks OpenAI's). Failover happens only
before the first byte reaches the client; after that, failures end the stream with an error
event in the client's format.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial

import httpx
import orjson
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone

from billing.admission import Admission, admit
from billing.budget import BudgetUnavailable, OverBudget, worst_case_cost
from billing.pricing import prices_from_model
from billing.ratelimit import RateLimited, RateLimitStatus
from catalog.selectors import ModelEntry, RouteEntry, catalog_get
from core.client_ip import client_ip
from core.errors import ANTHROPIC, OPENAI, ErrorCode, GatewayError, error_response, new_request_id, request_id_headers
from core.metrics import route_failover_count
from core.request_body import request_json_body
from orgs.authentication import key_authenticate
from orgs.selectors import KeyContext, presented_key

from .chat_format import chat_request_max_output, chat_request_validate
from .messages_format import messages_request_validate
from .metering import call_cost, call_inflight_begin, call_lost_row, call_meter
from .priced_options import priced_options_requested, routes_allowing
from .routing import route_failed, route_succeeded, routes_for
from .sse import SSEDecoder, SSEEvent
from .streams import ChatFromAnthropic, ChatPassThrough, Framer, MessagesFromChat, MessagesPassThrough
from .tokens import image_tokens_max, tokens_for_chars, tokens_for_request, tokens_for_text, tokens_upper_bound
from .translate_to_anthropic import anthropic_to_chat_response, chat_to_anthropic_request
from .translate_to_openai import anthropic_to_chat_request, chat_to_anthropic_response
from .upstream import provider_error_message, upstream_send
from .usage import usage_from_anthropic, usage_from_openai

logger = logging.getLogger(__name__)

# Provider answers that say nothing about the client's request: try the next route.
# 401/403/404 mean the *gateway's* credentials or route are wrong (a bad secret, an upstream
# model name the provider doesn't know); passing them on would blame the client's own key.
_RETRYABLE = {401, 403, 404, 408, 409, 429}
_GATEWAY_FAULT = {401, 403, 404}


@dataclass
class ProxyCall:
    """One request's facts as they become known; metering reads it at the end."""

    request_id: str
    client_format: str
    started_at: datetime
    t0: float
    client_ip: str | None
    key: KeyContext | None = None
    requested_model: str = ""
    model: ModelEntry | None = None
    route: RouteEntry | None = None
    streamed: bool = False
    status: int = 0
    error_type: str = ""
    usage: dict | None = None
    tokens_estimated: bool = False
    ttft_ms: int | None = None
    client_disconnected: bool = False
    body: dict = field(default_factory=dict)
    completion_text: str | None = None
    rate_limits: RateLimitStatus | None = None
    admission: Admission | None = None  # its rate limits and budgets (billing.admission)
    worst_case: Decimal = Decimal(0)  # the most it can cost (see _worst_case)
    worst_tokens: tuple[int, int] = (0, 0)  # the prompt and output token bounds behind it
    in_flight: str = ""  # where it is registered in flight (billing.inflight)
    metered: bool = False
    relay_started: bool = False
    endpoint: str = ""  # the ledger's endpoint when it is not the client format (count_tokens)

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.t0) * 1000)


def _client_ip(request: HttpRequest) -> str | None:
    return client_ip(request.META)  # X-Forwarded-For only from GATEWAY_TRUSTED_PROXIES


def _dialect(route: RouteEntry) -> str:
    return ANTHROPIC if route.provider.kind == "anthropic" else OPENAI


def _json_mode(body: dict) -> bool:
    fmt = body.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object")


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
    if not model.is_priced:
        raise GatewayError(
            503,
            f"The model `{model.public_id}` has no price configured, so it cannot be metered; "
            "the operator must set its prices in the catalog.",
            code=ErrorCode.MODEL_NOT_PRICED,
        )
    return model


async def _admit(call: ProxyCall, *, budgets: bool = True) -> Admission:
    """Admit the call against every rate limit and budget (billing.admission), or raise the
    GatewayError the client sees. `budgets=False`: a free call (count_tokens), limits only."""
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
    return tokens_upper_bound(
        call.body,
        image_tokens=image_tokens_max(route.upstream_model for route in model.routes),
        unbounded_tokens=model.context_window,
    )


def _max_output_sent(call: ProxyCall) -> tuple[int, int]:
    """(max output tokens, choices) exactly as the upstream will be asked for them. The body is
    validated for its own format: an Anthropic body's `max_tokens` is required, and OpenAI's
    `n` / `max_completion_tokens` mean nothing there (never sent on, whatever they hold)."""
    body = call.body
    if call.client_format == ANTHROPIC:
        return body["max_tokens"], 1
    # Absent, the translation to Anthropic sends the model's max output, and an OpenAI
    # upstream may generate up to it.
    return chat_request_max_output(body) or call.model.max_output_tokens, body.get("n") or 1


def _worst_case(call: ProxyCall) -> None:
    """The most this request can cost: reserved against a hard budget, and charged if the request
    is lost in flight. The one place it is computed: an upper bound on the prompt (byte length,
    images at their maximum) and the output exactly as the upstream will be asked for it."""
    max_output, choices = _max_output_sent(call)
    prompt_tokens = _prompt_tokens_bound(call)
    call.worst_case = worst_case_cost(
        prices=prices_from_model(call.model), prompt_tokens=prompt_tokens, max_output_tokens=max_output,
        choices=choices,
    )
    call.worst_tokens = (prompt_tokens, max_output * max(choices, 1))


def _upstream_body(call: ProxyCall, route: RouteEntry) -> dict:
    body, model = call.body, call.model
    dialect = _dialect(route)
    if call.client_format == OPENAI and dialect == OPENAI:
        out = dict(body, model=route.upstream_model)
        if body.get("stream"):
            # Always ask for usage: metering needs it even when the client did not.
            out["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return out
    if call.client_format == OPENAI:
        return chat_to_anthropic_request(
            body,
            upstream_model=route.upstream_model,
            default_max_tokens=model.max_output_tokens,
            drop_unsupported=route.drop_unsupported_params,
        )
    if dialect == ANTHROPIC:
        return dict(body, model=route.upstream_model)
    return anthropic_to_chat_request(
        body, upstream_model=route.upstream_model, drop_unsupported=route.drop_unsupported_params
    )


def _client_response_body(call: ProxyCall, route: RouteEntry, data: dict) -> dict:
    requested = call.requested_model  # validated as a non-empty string before any route is tried
    dialect = _dialect(route)
    if dialect == OPENAI:
        call.usage = usage_from_openai(data.get("usage") or {}) if data.get("usage") else None
    else:
        call.usage = usage_from_anthropic(data.get("usage") or {}) if data.get("usage") else None
    if call.client_format == OPENAI and dialect == OPENAI:
        return dict(data, model=requested)
    if call.client_format == OPENAI:
        return anthropic_to_chat_response(data, model=requested, request_id=call.request_id, json_tool=_json_mode(call.body))
    if dialect == ANTHROPIC:
        return dict(data, model=requested)
    return chat_to_anthropic_response(data, model=requested)


def _framer(call: ProxyCall, route: RouteEntry) -> Framer:
    requested = call.requested_model
    dialect = _dialect(route)
    include_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
    if call.client_format == OPENAI and dialect == OPENAI:
        return ChatPassThrough(model=requested, include_usage=include_usage)
    if call.client_format == OPENAI:
        return ChatFromAnthropic(model=requested, include_usage=include_usage, json_tool=_json_mode(call.body))
    if dialect == ANTHROPIC:
        return MessagesPassThrough(model=requested)
    return MessagesFromChat(model=requested, input_tokens_estimate=tokens_for_request(call.body))


def _response_headers(call: ProxyCall) -> dict[str, str]:
    headers = request_id_headers(call.request_id)
    if call.model is not None:
        headers["x-gateway-model"] = call.model.public_id
    if call.route is not None:
        headers["x-gateway-provider"] = call.route.provider.name
    if call.rate_limits is not None:
        headers.update(call.rate_limits.headers(call.client_format))
    return headers


class _RouteFailed(Exception):
    def __init__(self, summary: str, status: int | None = None, retry_after: str | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.status = status
        self.retry_after = retry_after


async def _attempt(call: ProxyCall, route: RouteEntry, request: HttpRequest) -> HttpResponse:
    """One route. Raises _RouteFailed for failures worth failing over on, GatewayError for the rest."""
    body = _upstream_body(call, route)
    stream = bool(call.body.get("stream"))
    try:
        # Anthropic headers come only from Anthropic-format clients, already checked (priced_options).
        client_headers = request.headers if call.client_format == ANTHROPIC else None
        response = await upstream_send(route, body, stream=True, client_headers=client_headers)
    except httpx.TimeoutException:
        raise _RouteFailed(f"{route.provider.name}: timed out") from None
    except httpx.TransportError as exc:
        raise _RouteFailed(f"{route.provider.name}: connection failed ({type(exc).__name__})") from None

    if response.status_code >= 400:
        try:
            raw = await response.aread()
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
            raw = await response.aread()
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
        payload = _client_response_body(call, route, data)
        call.status = 200
        if call.key.store_content:
            call.completion_text = _completion_text(payload)
        if call.usage is None:
            call.usage = _estimated_usage(call, payload)
        headers = _response_headers(call)
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
    decoder = SSEDecoder()
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
    opening_error = _stream_error_message(events[0])
    if opening_error is not None:
        await response.aclose()
        raise _RouteFailed(f"{route.provider.name}: stream opened with an error ({opening_error[:200]})", status=503)

    call.streamed = True
    call.status = 200
    framer = _framer(call, route)
    framer.collect = call.key.store_content
    out = StreamingHttpResponse(
        _relay(call, response, decoder, events, iterator, framer), content_type="text/event-stream"
    )
    # If the client leaves before the first chunk is sent, the generator never starts and its
    # `finally` never runs: the response's close() meters the request and frees the upstream.
    out._resource_closers.append(lambda: _close_unstarted(call, response))
    out["cache-control"] = "no-cache"
    out["x-accel-buffering"] = "no"  # nginx must not buffer the stream
    for name, value in _response_headers(call).items():
        out[name] = value
    return out


def _stream_error_message(event: SSEEvent) -> str | None:
    """The message if this event is a provider error (Anthropic `event: error`, OpenAI `{"error": …}`)."""
    if event.event != "error" and '"error"' not in event.data[:200]:
        return None
    try:
        data = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if event.event == "error" or data.get("type") == "error" or error:
        if isinstance(error, dict):
            return str(error.get("message") or error.get("type") or "provider error")
        return str(error or "provider error")
    return None


def _completion_text(payload: dict) -> str:
    if payload.get("type") == "message":
        return "".join(b.get("text", "") for b in payload.get("content") or [] if b.get("type") == "text")
    choices = payload.get("choices") or [{}]
    return (choices[0].get("message") or {}).get("content") or ""


def _estimated_usage(call: ProxyCall, payload: dict | None = None, text_chars: int = 0) -> dict:
    call.tokens_estimated = True
    completion = tokens_for_chars(text_chars)
    if payload is not None:
        completion = tokens_for_text(orjson.dumps(payload.get("choices") or payload.get("content") or "").decode())
    return {
        "prompt_tokens": tokens_for_request(call.body),
        "completion_tokens": completion,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
    }


def _close_unstarted(call: ProxyCall, response: httpx.Response) -> None:
    if call.relay_started:
        return
    call.client_disconnected = True
    call.status = 499
    call.error_type = "client_disconnected"
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
            call.error_type = "upstream_stream_error"
            call.status = 502
        if tail:
            yield tail
    except (httpx.TransportError, httpx.StreamError) as exc:
        call.error_type = "upstream_stream_error"
        call.status = 502
        name = call.route.provider.name if call.route else "provider"
        yield framer.error(f"The provider ({name}) failed mid-stream: {type(exc).__name__}. The response is incomplete.")
    except (asyncio.CancelledError, GeneratorExit):
        call.client_disconnected = True
        call.status = 499  # as for a client gone before the response: the ledger says who ended it
        call.error_type = call.error_type or "client_disconnected"
        raise
    finally:
        if framer.upstream_error and not call.error_type:
            call.error_type = "upstream_stream_error"
            call.status = 502
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


async def proxy_handle(request: HttpRequest, client_format: str) -> HttpResponse:
    call = ProxyCall(
        request_id=new_request_id(),
        client_format=client_format,
        started_at=timezone.now(),
        t0=time.perf_counter(),
        client_ip=_client_ip(request),
    )
    try:
        call.key = await request_authenticate(request)
        call.body = request_json_body(request)
        if isinstance(call.body.get("model"), str):
            call.requested_model = call.body["model"]
        if client_format == OPENAI:
            chat_request_validate(call.body)
        else:
            messages_request_validate(call.body)
        call.streamed = bool(call.body.get("stream"))
        call.model = await _resolve(call)
        options = priced_options_requested(call.body, request.headers, client_format)
        routes_allowing(options, list(call.model.routes), call.model)  # 400 before admission
        _worst_case(call)
        await _admit(call)
        await call_inflight_begin(call)
        routes = routes_allowing(options, await routes_for(call.model), call.model)
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
                await route_failed(route)
                continue
            await route_succeeded(route)
            if not call.streamed:
                call_meter(call)
            return response
        raise _all_failed(call.model, failures)
    except asyncio.CancelledError:
        # The client left before the response started (an SDK timeout, a closed tab): the
        # request still happened and may have cost money upstream, so it is metered.
        call.client_disconnected = True
        call.status = 499
        call.error_type = "client_disconnected"
        if call.route is not None and call.usage is None:
            # It reached a provider, which bills the prompt; what it generated is unknown.
            call.usage = _estimated_usage(call)
        call_meter(call)
        raise
    except GatewayError as exc:
        call.status = exc.status
        call.error_type = exc.code or exc.openai_type()
        call_meter(call)
        response = error_response(exc, client_format, call.request_id)
        if call.model is not None:
            response["x-gateway-model"] = call.model.public_id
        return response
    except Exception:
        logger.exception("unexpected error request_id=%s", call.request_id)
        call.status = 500
        call.error_type = "internal_error"
        call_meter(call)
        return error_response(
            GatewayError(500, f"Internal gateway error (request {call.request_id}). The operator can find it in the logs."),
            client_format,
            call.request_id,
        )
