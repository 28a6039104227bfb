"""(responses, anthropic): OpenAI Responses API clients on Anthropic routes, composed through chat.

Requests: Responses -> chat (responses_to_chat) -> Anthropic Messages (chat_to_anthropic), with
the chat translation's errors renamed to the Responses body's fields. Answers: Anthropic -> chat
(chat_to_anthropic) -> Response. Streams: Anthropic events -> chat chunks (AnthropicStreamToChat)
-> `response.*` events (ChatStreamToResponses), the final events at `message_stop`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import GatewayError

from ..sse import SSEEvent
from .base import Framer, Translation, loads_object
from .chat_to_anthropic import (
    AnthropicStreamToChat,
    anthropic_to_chat_response,
    chat_to_anthropic_request,
    chat_wants_json_tool,
)
from .responses_to_chat import (
    ResponsesFramer,
    responses_body,
    responses_error_param,
    responses_output_text,
    chat_request_of,
)

if TYPE_CHECKING:
    from ..call import ProxyCall
    from ..catalog import RouteEntry


class ResponsesFromAnthropic(ResponsesFramer):
    """Responses client, Anthropic upstream: events -> chat chunks -> Responses events."""

    def __init__(self, *, body: dict, model: str, request_id: str, input_tokens_estimate: int,
                 json_tool: bool) -> None:
        super().__init__(body=body, model=model, request_id=request_id, input_tokens_estimate=input_tokens_estimate)
        self._anthropic = AnthropicStreamToChat(model=model, include_usage=False, json_tool=json_tool)

    def feed(self, event: SSEEvent) -> bytes:
        data = loads_object(event.data)
        if data is None:
            return b""
        name = event.event or data.get("type", "")
        chunks = self._anthropic.feed(name, data)
        if self._anthropic.usage_known:  # otherwise metering estimates and flags it
            self.usage = dict(self._anthropic.usage)
        out = self._chunks(chunks)
        if self._anthropic.complete:
            out += self._finish()
        return out


def _json_tool(call: "ProxyCall") -> bool:
    """True when text.format asks for JSON, which chat_to_anthropic serves as a forced tool."""
    fmt = (call.body.get("text") or {}).get("format") or {}
    return chat_wants_json_tool({"response_format": fmt})


def _request(call: "ProxyCall", route: "RouteEntry") -> dict:
    chat = chat_request_of(call.body)
    try:
        return chat_to_anthropic_request(
            chat.body,
            upstream_model=route.upstream_model,
            default_max_tokens=call.model.max_output_tokens,
            drop_unsupported=route.drop_unsupported_params,
        )
    except GatewayError as exc:
        raise responses_error_param(exc, chat) from None


def _response(call: "ProxyCall", data: dict) -> dict:
    chat = anthropic_to_chat_response(data, model=call.requested_model, request_id=call.request_id,
                                      json_tool=_json_tool(call))
    return responses_body(call, chat)


def _framer(call: "ProxyCall") -> Framer:
    return ResponsesFromAnthropic(body=call.body, model=call.requested_model, request_id=call.request_id,
                                  input_tokens_estimate=call.operation.input_tokens(call.body),
                                  json_tool=_json_tool(call))


RESPONSES_TO_ANTHROPIC = Translation(request=_request, response=_response, framer=_framer,
                                     text=responses_output_text)
