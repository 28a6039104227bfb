"""POST /api/ai/embeddings with the official openai SDK, through the real server, to the fake provider:
every input form, `dimensions`, float and the SDK's default base64, the ledger and its exact cost,
budgets, the key's model list, the catalog's model types and bad bodies."""

from __future__ import annotations

import concurrent.futures
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from tests.fake_provider import (
    OPENAI_CHAT,
    OPENAI_EMBEDDINGS,
    FakeResponse,
    embedding_base64,
    embedding_vector,
)
from tests.helpers import ledger_rows
from tests.proxy_helpers import add_route, set_budget

pytestmark = pytest.mark.django_db(transaction=True)

SMALL, LARGE = "text-embedding-3-small", "text-embedding-3-large"
PRICES = {SMALL: Decimal("0.02"), LARGE: Decimal("0.13"), "mock-embedding": Decimal("0.02")}


def _cost(model: str, tokens: int) -> Decimal:
    return (tokens * PRICES[model] / Decimal(1_000_000)).quantize(Decimal("1e-10"))


def _post(gateway, body: dict, path: str = "/api/ai/embeddings", **headers) -> httpx.Response:
    return httpx.post(gateway.url + path, json=body,
                      headers={"Authorization": f"Bearer {gateway.key}", **headers}, timeout=10)


# --- every input form, both encodings ----------------------------------------------------------


def test_it_embeds_a_string_with_the_sdks_default_base64(gateway):
    reply = gateway.openai().embeddings.create(model=SMALL, input="the quick brown fox")

    sent = gateway.fake.requests_to(OPENAI_EMBEDDINGS)[-1]
    # The SDK asked for base64 and decoded it itself: the vector is exactly what the fake computed.
    assert sent.json == {"model": SMALL, "input": "the quick brown fox", "encoding_format": "base64"}
    assert sent.headers["authorization"] == "Bearer fake-openai-key"
    assert reply.object == "list" and reply.model == SMALL
    assert [e.index for e in reply.data] == [0] and reply.data[0].object == "embedding"
    assert reply.data[0].embedding == embedding_vector("the quick brown fox", 1536)
    assert (reply.usage.prompt_tokens, reply.usage.total_tokens) == (4, 4)
    assert reply._request_id.startswith("req_")


def test_it_embeds_a_list_of_strings_as_floats(gateway):
    texts = ["first text", "second", "a third one here"]
    reply = gateway.openai().embeddings.create(model=LARGE, input=texts, encoding_format="float")

    assert [e.embedding for e in reply.data] == [embedding_vector(t, 3072) for t in texts]
    assert [e.index for e in reply.data] == [0, 1, 2]
    assert reply.usage.prompt_tokens == 2 + 1 + 4
    assert gateway.fake.requests_to(OPENAI_EMBEDDINGS)[-1].json["encoding_format"] == "float"


@pytest.mark.parametrize("tokens, inputs", [
    ([101, 2023, 7592], [[101, 2023, 7592]]),
    ([[101, 2023], [7592, 0, 5]], [[101, 2023], [7592, 0, 5]]),
])
def test_it_embeds_token_arrays(gateway, tokens, inputs):
    reply = gateway.openai().embeddings.create(model=SMALL, input=tokens)

    assert [e.embedding for e in reply.data] == [embedding_vector(item, 1536) for item in inputs]
    assert reply.usage.prompt_tokens == sum(len(item) for item in inputs)
    assert gateway.fake.requests_to(OPENAI_EMBEDDINGS)[-1].json["input"] == tokens


def test_it_passes_dimensions_on(gateway):
    reply = gateway.openai().embeddings.create(model=LARGE, input=["short", "vectors"], dimensions=256)

    assert [len(e.embedding) for e in reply.data] == [256, 256]
    assert reply.data[1].embedding == embedding_vector("vectors", 256)
    assert gateway.fake.requests_to(OPENAI_EMBEDDINGS)[-1].json["dimensions"] == 256


def test_it_passes_base64_through_untouched_with_the_requested_name(gateway):
    r = _post(gateway, {"model": SMALL, "input": ["one", "two"], "encoding_format": "base64", "dimensions": 8,
                        "user": "end-user-7"}, path="/api/ai/v1/embeddings")

    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["model"] == SMALL and body["object"] == "list"
    assert [d["embedding"] for d in body["data"]] == [embedding_base64(embedding_vector(t, 8)) for t in ("one", "two")]
    assert body["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    assert r.headers["x-gateway-model"] == SMALL and r.headers["x-gateway-provider"] == "openai"
    assert gateway.fake.requests_to(OPENAI_EMBEDDINGS)[-1].json["user"] == "end-user-7"


def test_it_embeds_offline_on_the_mock_model(gateway):
    reply = gateway.openai().embeddings.create(model="mock-embedding", input="abcdefgh", dimensions=16)

    assert len(reply.data[0].embedding) == 16 and reply.model == "mock-embedding"
    assert reply.usage.prompt_tokens == 2
    assert not gateway.fake.requests_to(OPENAI_EMBEDDINGS)
    [row] = ledger_rows(1)
    assert row.provider == "mock" and row.cost == _cost("mock-embedding", 2)


# --- metering ---------------------------------------------------------------------------------


def test_it_meters_prompt_tokens_at_the_input_price(gateway):
    gateway.fake.enqueue(OPENAI_EMBEDDINGS, FakeResponse(usage={"prompt_tokens": 123_457, "total_tokens": 123_457}))
    raw = gateway.openai().embeddings.with_raw_response.create(model=LARGE, input="priced")

    [row] = ledger_rows(1)
    assert row.endpoint == "embeddings"
    assert (row.prompt_tokens, row.completion_tokens, row.cache_read_tokens, row.cache_write_tokens) == (
        123_457, 0, 0, 0)
    assert row.cost == _cost(LARGE, 123_457) == Decimal("0.0160494100")
    assert Decimal(raw.headers["x-gateway-cost-usd"]) == row.cost
    assert row.request_id == raw.headers["x-request-id"]
    assert row.status == 200 and row.streamed is False and row.tokens_estimated is False
    assert (row.provider, row.upstream_model, row.model_name) == ("openai", LARGE, LARGE)
    assert row.input_price == Decimal("0.13") and row.output_price == Decimal("0")
    assert row.organization.slug == "alice"


def test_it_estimates_and_flags_usage_the_provider_left_out(gateway):
    vector = embedding_vector("abcdefgh", 4)
    gateway.fake.enqueue(OPENAI_EMBEDDINGS, FakeResponse(json={
        "object": "list", "model": SMALL, "data": [{"object": "embedding", "index": 0, "embedding": vector}]}))
    r = _post(gateway, {"model": SMALL, "input": "abcdefgh", "encoding_format": "float"})

    assert r.status_code == 200 and r.json()["data"][0]["embedding"] == vector
    [row] = ledger_rows(1)
    assert row.tokens_estimated is True
    assert (row.prompt_tokens, row.completion_tokens) == (2, 0)  # 8 characters, ~4 a token
    assert row.cost == _cost(SMALL, 2)


def test_it_fails_over_to_the_next_route(gateway, fake_provider):
    add_route(SMALL, "openai-backup", base_url=fake_provider.url + "/v1", upstream_model=SMALL, priority=1)
    gateway.fake.enqueue(OPENAI_EMBEDDINGS, FakeResponse(status=503))
    reply = gateway.openai().embeddings.create(model=SMALL, input="still served")

    assert reply.data[0].embedding == embedding_vector("still served", 1536)
    assert len(gateway.fake.requests_to(OPENAI_EMBEDDINGS)) == 2
    [row] = ledger_rows(1)
    assert row.status == 200 and row.provider == "openai-backup"


def test_it_refuses_over_a_hard_budget_before_the_provider(gateway, alice_org):
    # Ten texts of 8,000 one-byte characters: a worst case of 10 x 8,004 tokens at $0.13/M, $0.0104.
    set_budget(alice_org, "0.01")
    client = gateway.openai()
    client.embeddings.create(model=LARGE, input="small enough")
    with pytest.raises(openai.RateLimitError) as refused:
        client.embeddings.create(model=LARGE, input=["x" * 8000] * 10)

    assert refused.value.code == "budget_exceeded" and refused.value.type == "insufficient_quota"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert len(gateway.fake.requests_to(OPENAI_EMBEDDINGS)) == 1
    rows = ledger_rows(2)
    assert [(r.status, r.error_type, r.endpoint) for r in rows] == [
        (200, "", "embeddings"), (429, "budget_exceeded", "embeddings")]
    assert rows[1].cost == 0


def test_concurrent_requests_cannot_overshoot_a_hard_budget(gateway, alice_org):
    # Each request: 3 texts of 8,000 one-byte characters, a worst case of 3 x 8,004 tokens at
    # $0.13/M = $0.00312168; the provider bills all of it (its count can never exceed the bound).
    set_budget(alice_org, "0.01")
    for _ in range(12):
        gateway.fake.enqueue(OPENAI_EMBEDDINGS, FakeResponse(delay=0.3, usage={"prompt_tokens": 24_012,
                                                                              "total_tokens": 24_012}))
    client = gateway.openai()

    def one(_):
        try:
            client.embeddings.create(model=LARGE, input=["x" * 8000] * 3, dimensions=4)
            return "ok"
        except openai.RateLimitError:
            return "refused"

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(one, range(12)))
    assert outcomes.count("ok") == 3, outcomes  # 3 worst cases fit in $0.01; a 4th does not
    rows = ledger_rows(12)
    assert len(rows) == 12
    assert sum(r.cost for r in rows) == 3 * _cost(LARGE, 24_012) <= Decimal("0.01")


def test_it_keeps_to_the_keys_model_list(gateway, alice_org):
    from catalog.models import CatalogModel
    from orgs.services import api_key_issue

    issued = api_key_issue(organization=alice_org, models=CatalogModel.objects.filter(public_id=SMALL), actor="test")
    client = gateway.openai(api_key=issued.plaintext)
    assert client.embeddings.create(model=SMALL, input="allowed").data
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.embeddings.create(model=LARGE, input="not allowed")

    assert refused.value.code == "model_not_allowed" and refused.value.param == "model"
    assert len(gateway.fake.requests_to(OPENAI_EMBEDDINGS)) == 1


# --- model types ------------------------------------------------------------------------------


def test_it_refuses_a_chat_model_on_embeddings(gateway):
    with pytest.raises(openai.BadRequestError) as refused:
        gateway.openai().embeddings.create(model="gpt-4o", input="hello")

    error = refused.value
    assert error.code == "model_wrong_type" and error.param == "model"
    assert "`gpt-4o` is a chat model; embeddings serves embedding models" in error.message
    assert "Use POST /api/ai/chat/completions" in error.message
    assert not gateway.fake.requests_to(OPENAI_EMBEDDINGS)
    [row] = ledger_rows(1)
    assert (row.status, row.error_type, row.endpoint) == (400, "model_wrong_type", "embeddings")


def test_it_refuses_an_embedding_model_on_chat_completions(gateway):
    with pytest.raises(openai.BadRequestError) as refused:
        gateway.openai().chat.completions.create(model=SMALL, messages=[{"role": "user", "content": "hi"}])

    error = refused.value
    assert error.code == "model_wrong_type" and error.param == "model"
    assert f"`{SMALL}` is an embedding model" in error.message
    assert "Use POST /api/ai/embeddings for it." in error.message
    assert not gateway.fake.requests_to(OPENAI_CHAT)


def test_it_refuses_an_embedding_model_on_messages(gateway):
    with pytest.raises(anthropic.BadRequestError) as refused:
        gateway.anthropic().messages.create(model=LARGE, max_tokens=10, messages=[{"role": "user", "content": "hi"}])

    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert "embedding model" in refused.value.message and "/embeddings" in refused.value.message


def test_it_refuses_an_embedding_model_on_count_tokens(gateway):
    with pytest.raises(anthropic.BadRequestError) as refused:
        gateway.anthropic().messages.count_tokens(model=SMALL, messages=[{"role": "user", "content": "hi"}])
    assert "Use POST /api/ai/embeddings for it." in refused.value.message


def test_it_skips_a_route_on_a_provider_without_embeddings(gateway, caplog):
    from catalog.models import CatalogModel, Provider, Route

    # Written behind the catalog's validation (which refuses it): the request path still copes.
    model = CatalogModel.objects.get(public_id=SMALL)
    Route.objects.create(model=model, provider=Provider.objects.get(name="anthropic"), upstream_model="x", priority=0)
    Route.objects.filter(model=model, provider__name="openai").update(priority=1)
    Provider.objects.get(name="openai").save()  # a catalog change: every instance drops its snapshot

    reply = gateway.openai().embeddings.create(model=SMALL, input="served anyway")
    assert reply.data[0].embedding == embedding_vector("served anyway", 1536)
    assert "route failed" in caplog.text and "`embeddings` bodies to the `anthropic` dialect" in caplog.text

    Route.objects.filter(model=model, provider__name="openai").update(enabled=False)
    Provider.objects.get(name="openai").save()
    r = _post(gateway, {"model": SMALL, "input": "nowhere to go"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_unavailable"
    assert "anthropic: cannot serve this request" in r.json()["error"]["message"]
    assert len(gateway.fake.requests_to(OPENAI_EMBEDDINGS)) == 1


def test_it_lists_embedding_models_with_the_others_in_openai_format_only(gateway):
    models = {m.id: m for m in gateway.openai().models.list()}
    assert {SMALL, LARGE, "mock-embedding", "gpt-4o"} <= set(models)
    assert (models[LARGE].model_type, models[LARGE].dimensions) == ("embedding", 3072)
    assert models["gpt-4o"].model_type == "chat"
    # Anthropic's list is what Messages can serve.
    anthropic_ids = {m.id for m in gateway.anthropic().models.list()}
    assert "gpt-4o" in anthropic_ids and SMALL not in anthropic_ids


# --- bad requests -----------------------------------------------------------------------------


@pytest.mark.parametrize("body, param, code", [
    ({"model": SMALL, "input": ""}, "input", "empty_string"),
    ({"model": SMALL, "input": ["ok", ""]}, "input[1]", "empty_string"),
    ({"model": SMALL, "input": []}, "input", "empty_array"),
    ({"model": SMALL, "input": [[1, 2], ["x"]]}, "input[1][0]", "invalid_type"),
    ({"model": SMALL}, "input", "missing_required_parameter"),
    ({"model": SMALL, "input": "x", "dimensions": 0}, "dimensions", "integer_below_min_value"),
    ({"model": SMALL, "input": "x", "encoding_format": "int8"}, "encoding_format", "invalid_value"),
    ({"model": SMALL, "input": "x", "stream": True}, "stream", "unsupported_parameter"),
    ({"model": SMALL, "input": "x", "truncate": "END"}, "truncate", "unknown_parameter"),
])
def test_it_refuses_bad_bodies_with_the_param(gateway, body, param, code):
    r = _post(gateway, body)

    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert r.json()["detail"] == error["message"]
    assert not gateway.fake.requests_to(OPENAI_EMBEDDINGS)
    [row] = ledger_rows(1)
    assert (row.status, row.error_type, row.endpoint) == (400, code, "embeddings")


def test_it_refuses_more_dimensions_than_the_model_has(gateway):
    with pytest.raises(openai.BadRequestError) as refused:
        gateway.openai().embeddings.create(model=SMALL, input="x", dimensions=1537)
    assert refused.value.param == "dimensions" and refused.value.code == "integer_above_max_value"
    assert "`text-embedding-3-small` returns at most 1536 dimensions, but got 1537" in refused.value.message
    assert not gateway.fake.requests_to(OPENAI_EMBEDDINGS)
    # A model with no size in the catalog: the provider's own refusal comes back, never a huge vector.
    from catalog.models import CatalogModel

    CatalogModel.objects.filter(public_id="mock-embedding").update(dimensions=None)
    CatalogModel.objects.get(public_id="mock-embedding").save()  # drops the cached catalog
    r = _post(gateway, {"model": "mock-embedding", "input": "x", "dimensions": 2**63})
    assert r.status_code == 400 and r.json()["error"]["code"] == "upstream_invalid_request"
    assert "Must be between 1 and 1536" in r.json()["error"]["message"]


def test_the_sdk_sees_the_param_of_a_bad_body(gateway):
    with pytest.raises(openai.BadRequestError) as refused:
        gateway.openai().embeddings.create(model=SMALL, input=["fine", ""])
    assert refused.value.param == "input[1]" and refused.value.status_code == 400


def test_it_answers_unknown_models_and_bad_json_in_openai_format(gateway):
    r = _post(gateway, {"model": "no-such-embedder", "input": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = httpx.post(gateway.url + "/api/ai/embeddings", content=b"{not json",
                   headers={"Authorization": f"Bearer {gateway.key}", "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.get(gateway.url + "/api/ai/embeddings", headers={"Authorization": f"Bearer {gateway.key}"})
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = httpx.post(gateway.url + "/api/ai/embeddings", json={"model": SMALL, "input": "x"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
