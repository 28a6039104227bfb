"""Operation descriptors: what one `/api/ai/` endpoint is, for the shared request path.

`proxy.proxy_handle(request, operation)` runs every operation the same way: authenticate, parse
the JSON body, `validate`, resolve the model (and check it is of `model_type`), refuse priced
options a route does not allow, compute the worst case and admit (rate limits; budgets too when
`billed`), then `serve` (by default: forward to the model's routes with failover, translating
by (`body_format`, the route's dialect)), and meter one ledger row named `name`.

Adding an endpoint (see README, "Adding an endpoint"):
  1. an `Operation` here (and its validator, in a `<format>_format.py` module);
  2. its translations, one module per (body_format, dialect) pair, registered in
     ai_proxy.translations.TRANSLATIONS; a dialect the operation must not reach is simply left
     out of `upstream_paths` (its routes are skipped with a reason);
  3. the upstream path key in each adapter that serves it (ProviderAdapter.paths);
  4. one url line: `path("embeddings", proxy_view(EMBEDDINGS))` (ai_proxy/urls.py);
  5. a `UsageRecord.Endpoint` choice for `name` when it is a new ledger value;
  6. its `doc`: the schemas of its request, response and stream events, in ai_proxy/wire_schemas.py.
     The OpenAPI document (ai_proxy/openapi.py) lists it at every url its view is routed to.
No edit to ai_proxy/proxy.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from billing.models import UsageRecord
from core.errors import ANTHROPIC, OPENAI

from .chat_format import chat_request_max_output, chat_request_validate
from .embeddings_format import embeddings_request_validate, embeddings_tokens_bound, embeddings_tokens_estimate
from .messages_format import messages_count_tokens_validate, messages_request_validate
from .providers import ProviderAdapter
from .token_counting import count_tokens_serve
from .tokens import tokens_for_request, tokens_upper_bound
from .translations.responses_to_chat import (
    responses_body_validate,
    responses_input_tokens,
    responses_input_tokens_bound,
    responses_max_output,
)

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

    from catalog.selectors import ModelEntry

    from .call import ProxyCall

# Catalog model types an operation may serve (`Operation.model_type`; catalog.CatalogModel.ModelType).
CHAT = "chat"
EMBEDDING = "embedding"
# Where a client should send a model of each type, for the error that refuses it elsewhere.
MODEL_TYPE_ENDPOINTS = {
    CHAT: "POST /api/ai/chat/completions (or /api/ai/anthropic/v1/messages)",
    EMBEDDING: "POST /api/ai/embeddings",
}


@dataclass(frozen=True)
class OperationDoc:
    """What the OpenAPI document says about an operation (ai_proxy.openapi builds its paths,
    statuses and headers from this and the operation's other fields).

    summary         one line, shown in Swagger UI's list.
    request         component names in ai_proxy.wire_schemas.COMPONENTS: the JSON body,
    response        the JSON answer,
    stream_event    and the data of one Server-Sent Event when it streams ("" when it never does).
    description     more, in Markdown.
    headers         answer headers beside the common ones (name -> OpenAPI header object).
    """

    summary: str
    request: str
    response: str
    stream_event: str = ""
    description: str = ""
    headers: Mapping[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """One endpoint's behaviour on the shared request path. Module-level constants; never built
    per request.

    name            the ledger's endpoint value (billing.UsageRecord.Endpoint) and the log's.
    label           how messages name it ("chat completions").
    error_format    "openai" | "anthropic": the error bodies and rate-limit headers its clients read.
    body_format     its request body's format: the first half of the translation key
                    (ai_proxy.translations: ("chat", "anthropic") -> chat_to_anthropic ...).
    validate        body -> body: raises GatewayError (400, the param named) on anything invalid.
                    Runs on the parsed JSON object before the model is resolved.
    upstream_paths  dialect -> the provider adapter's path key for this operation
                    ({"openai": "chat", "anthropic": "messages"}). Routes whose dialect is absent
                    cannot serve it and are skipped with a reason.
    max_output      (body, model) -> (max output tokens, choices) exactly as the upstream will be
                    asked for them: the worst case reserved against budgets and TPM limits.
                    (0, 1) for operations with no output (embeddings).
    input_tokens    body -> estimated input tokens: usage when the provider never reports it
                    (flagged as estimated), and the count_tokens fallback.
    input_tokens_bound  (body, image_tokens=, unbounded_tokens=) -> a true upper bound of the input
                    tokens on any provider, for admission (ai_proxy.tokens.tokens_upper_bound).
    may_stream      False: `stream` in the body is ignored (the validator should refuse it).
    billed          False: free at the provider (count_tokens): rate limits only, no budgets, no
                    price needed, no priced-option checks, zero usage on the ledger row.
    model_type      the catalog model type it serves ("chat" or "embedding").
    serve           async (call, request) -> HttpResponse, once admitted; None means the proxy's
                    forward loop (routes, failover, translation, streaming). A custom `serve`
                    records its outcome with call.succeeded()/failed(); the proxy meters it.
    doc             what the OpenAPI document says about it (OperationDoc); None fails
                    tests/test_openapi.py, which names what to add.
    """

    name: str
    label: str
    error_format: str
    body_format: str
    validate: Callable[[dict], dict]
    upstream_paths: Mapping[str, str]
    max_output: Callable[[dict, "ModelEntry"], tuple[int, int]] = lambda body, model: (0, 1)
    input_tokens: Callable[[dict], int] = tokens_for_request
    input_tokens_bound: Callable[..., int] = tokens_upper_bound
    may_stream: bool = True
    billed: bool = True
    model_type: str = CHAT
    serve: Callable[["ProxyCall", "HttpRequest"], Awaitable["HttpResponse"]] | None = None
    doc: OperationDoc | None = None

    def streams(self, body: dict) -> bool:
        return self.may_stream and bool(body.get("stream"))


def _chat_max_output(body: dict, model: "ModelEntry") -> tuple[int, int]:
    # Absent, the translation to Anthropic sends the model's max output, and an OpenAI upstream
    # may generate up to it. `n` means nothing to Anthropic bodies, so only chat counts it.
    return chat_request_max_output(body) or model.max_output_tokens, body.get("n") or 1


def _messages_max_output(body: dict, model: "ModelEntry") -> tuple[int, int]:
    return body["max_tokens"], 1  # required by the validator


CHAT_COMPLETIONS = Operation(
    name=UsageRecord.Endpoint.OPENAI,
    label="chat completions",
    error_format=OPENAI,
    body_format="chat",
    validate=chat_request_validate,
    upstream_paths={OPENAI: "chat", ANTHROPIC: "messages"},
    max_output=_chat_max_output,
    doc=OperationDoc(
        summary="Create a chat completion (OpenAI Chat Completions, any catalog model)",
        request="ChatCompletionRequest",
        response="ChatCompletion",
        stream_event="ChatCompletionChunk",
        description="Routed to the model's provider and translated when it speaks Anthropic's format. With "
                    "`stream: true` the answer is Server-Sent Events: `data: <ChatCompletionChunk>` lines, then "
                    "`data: [DONE]`.",
    ),
)

MESSAGES = Operation(
    name=UsageRecord.Endpoint.ANTHROPIC,
    label="messages",
    error_format=ANTHROPIC,
    body_format="messages",
    validate=messages_request_validate,
    upstream_paths={OPENAI: "chat", ANTHROPIC: "messages"},
    max_output=_messages_max_output,
    doc=OperationDoc(
        summary="Create a message (Anthropic Messages, any catalog model)",
        request="MessagesRequest",
        response="Message",
        stream_event="MessagesStreamEvent",
        description="`Anthropic(base_url=\".../api/ai/anthropic\")` calls `/v1/messages`; the Vercel AI SDK calls "
                    "`/messages`. With `stream: true` the answer is Server-Sent Events, each with an `event:` name and "
                    "a `data:` object of the same `type`.",
    ),
)

# The OpenAI Responses API, served on every chat model through chat completions upstream (the
# translations responses_to_chat and responses_to_anthropic); its estimates are those of the chat
# body it becomes.
RESPONSES = Operation(
    name=UsageRecord.Endpoint.RESPONSES,
    label="responses",
    error_format=OPENAI,
    body_format="responses",
    validate=responses_body_validate,
    upstream_paths={OPENAI: "chat", ANTHROPIC: "messages"},
    max_output=responses_max_output,
    input_tokens=responses_input_tokens,
    input_tokens_bound=responses_input_tokens_bound,
    doc=OperationDoc(
        summary="Create a response (OpenAI Responses API, any catalog model)",
        request="ResponsesRequest",
        response="Response",
        stream_event="ResponseStreamEvent",
        description="The Vercel AI SDK's default `openai(model)` and the `openai` SDK's `responses.create`. Served "
                    "through chat completions upstream (Anthropic routes: on to Messages); stateless: `store: true`, "
                    "`previous_response_id` and item references are refused with a 400 naming the field, as are "
                    "hosted tools. With `stream: true` the answer is Server-Sent Events: `event: <type>` and "
                    "`data: <ResponseStreamEvent>` with a `sequence_number`, ending with `response.completed`, "
                    "`response.incomplete` or `response.failed`.",
    ),
)

# Counted by the provider where its adapter can (Anthropic), else estimated: it never fails over
# to an error, so it brings its own `serve`.
COUNT_TOKENS = Operation(
    name=UsageRecord.Endpoint.COUNT_TOKENS,
    label="count_tokens",
    error_format=ANTHROPIC,
    body_format="messages",
    validate=messages_count_tokens_validate,
    upstream_paths={ANTHROPIC: "count_tokens"},
    may_stream=False,
    billed=False,
    serve=count_tokens_serve,
    doc=OperationDoc(
        summary="Count a message's input tokens (Anthropic format)",
        request="CountTokensRequest",
        response="CountTokensResponse",
        description="Free: it counts against the key's and organization's rate limits, not budgets, and leaves a "
                    "zero-cost ledger row.",
        headers={"x-gateway-token-count": {
            "description": "`provider` when an Anthropic route counted, `estimate` otherwise.",
            "schema": {"enum": ["provider", "estimate"]}}},
    ),
)

# OpenAI's embeddings, on OpenAI-dialect routes only (Anthropic has no such endpoint): no output,
# never streamed, priced per input token.
EMBEDDINGS = Operation(
    name=UsageRecord.Endpoint.EMBEDDINGS,
    label="embeddings",
    error_format=OPENAI,
    body_format="embeddings",
    validate=embeddings_request_validate,
    upstream_paths={OPENAI: "embeddings"},
    input_tokens=embeddings_tokens_estimate,
    input_tokens_bound=embeddings_tokens_bound,
    may_stream=False,
    model_type=EMBEDDING,
    doc=OperationDoc(
        summary="Create embeddings (OpenAI Embeddings, the catalog's embedding models)",
        request="EmbeddingsRequest",
        response="EmbeddingsResponse",
    ),
)


def model_types_served(adapter: ProviderAdapter) -> frozenset[str]:
    """The catalog model types some operation can serve through `adapter`: its dialect is in the
    operation's `upstream_paths` and the adapter has that path. The catalog's validation refuses
    routes of other types on providers of the adapter's kind (catalog.provider_kinds)."""
    operations = [value for value in globals().values() if isinstance(value, Operation)]  # every one defined here
    return frozenset(
        op.model_type for op in operations
        if adapter.dialect in op.upstream_paths and adapter.supports(op.upstream_paths[adapter.dialect])
    )
