"""embeddings_request_validate, the admission bound and the usage estimate for /embeddings bodies;
and the two providers that answer /embeddings without a network (the fake, the offline mock)."""

from __future__ import annotations

import array
import asyncio
import base64
import copy

import httpx
import openai
import orjson
import pytest

from ai_proxy.embeddings_format import (
    MAX_INPUTS,
    embeddings_request_validate,
    embeddings_tokens_bound,
    embeddings_tokens_estimate,
    embeddings_upstream_body,
)
from core.errors import GatewayError
from ai_proxy.providers.mock import mock_embedding_vector, mock_handler
from tests.fake_provider import OPENAI_EMBEDDINGS, FakeResponse, embedding_vector


def body(**extra):
    return {"model": "text-embedding-3-small", "input": "hello world", **extra}


def rejected(payload) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        embeddings_request_validate(payload)
    assert info.value.status == 400
    return info.value


@pytest.mark.parametrize("value", [
    "hello", ["a", "b"], [1, 2, 3], [[1, 2], [3]], [0], ["x"] * MAX_INPUTS, " ",
])
def test_it_accepts_every_input_form(value):
    payload = body(input=value, dimensions=256, encoding_format="base64", user="u-1")
    original = copy.deepcopy(payload)
    assert embeddings_request_validate(payload) is payload
    assert payload == original


def test_it_accepts_nulls_for_optional_fields_and_stream_false():
    embeddings_request_validate(body(dimensions=None, encoding_format=None, user=None, stream=False))


@pytest.mark.parametrize("payload, param, code", [
    ({"input": "x"}, "model", None),
    ({"model": "", "input": "x"}, "model", None),
    ({"model": 3, "input": "x"}, "model", "invalid_type"),
    ({"model": "m"}, "input", "missing_required_parameter"),
    (body(input=None), "input", "missing_required_parameter"),
    (body(input=""), "input", "empty_string"),
    (body(input=[]), "input", "empty_array"),
    (body(input=["x"] * (MAX_INPUTS + 1)), "input", "array_above_max_length"),
    (body(input=["a", ""]), "input[1]", "empty_string"),
    (body(input=["a", 3]), "input[1]", "invalid_type"),
    (body(input=[1, "a"]), "input[1]", "invalid_type"),
    (body(input=[1, -2]), "input[1]", "integer_below_min_value"),
    (body(input=[1, True]), "input[1]", "invalid_type"),
    (body(input=[1.5]), "input[0]", "invalid_type"),
    (body(input=[[1], []]), "input[1]", "empty_array"),
    (body(input=[[1], [2, "x"]]), "input[1][1]", "invalid_type"),
    (body(input=[[1], 2]), "input[1]", "invalid_type"),
    (body(input=[{"text": "a"}]), "input[0]", "invalid_type"),
    (body(input={"text": "a"}), "input", "invalid_type"),
    (body(input=7), "input", "invalid_type"),
    (body(dimensions=0), "dimensions", "integer_below_min_value"),
    (body(dimensions=-5), "dimensions", "integer_below_min_value"),
    (body(dimensions="256"), "dimensions", "invalid_type"),
    (body(dimensions=2.5), "dimensions", "invalid_type"),
    (body(dimensions=True), "dimensions", "invalid_type"),
    (body(encoding_format="binary"), "encoding_format", "invalid_value"),
    (body(user=5), "user", "invalid_type"),
    (body(stream=True), "stream", "unsupported_parameter"),
    (body(input_type="query"), "input_type", "unknown_parameter"),
])
def test_it_refuses_bad_bodies_naming_the_param(payload, param, code):
    error = rejected(payload)
    assert error.param == param
    assert error.code == code
    assert error.message
    if param and param != "model":
        assert param.split("[")[0] in error.message


def test_it_says_what_was_wrong_in_openai_wording():
    assert rejected(body(encoding_format="binary")).message == (
        "Invalid value for 'encoding_format': 'binary'. Supported values are: 'float', 'base64'.")
    assert rejected(body(input_type="query")).message.startswith("Unknown parameter: 'input_type'.")
    assert "not streamed" in rejected(body(stream=True)).message


def test_it_refuses_a_body_that_is_not_an_object():
    assert rejected(["x"]).code == "invalid_type"


def test_it_sends_upstream_only_the_given_fields_under_the_routes_model():
    assert embeddings_upstream_body(body(dimensions=8, user=None, stream=False), upstream_model="up") == {
        "model": "up", "input": "hello world", "dimensions": 8}


def test_the_bound_counts_text_bytes_and_token_arrays_as_themselves():
    # "héllo" is 6 UTF-8 bytes; each input adds its bound of 4.
    assert embeddings_tokens_bound(body(input="héllo"), unbounded_tokens=8192) == 10
    assert embeddings_tokens_bound(body(input=["ab", "日本"]), unbounded_tokens=8192) == (2 + 4) + (6 + 4)
    assert embeddings_tokens_bound(body(input=[5, 6, 7]), unbounded_tokens=8192) == 3 + 4
    assert embeddings_tokens_bound(body(input=[[5, 6], [7]]), unbounded_tokens=8192) == (2 + 4) + (1 + 4)
    # No input is billed past the model's input window.
    assert embeddings_tokens_bound(body(input=["x" * 20000, "y"]), unbounded_tokens=8192) == 8192 + 5


def test_the_bound_is_never_below_a_dense_tokenizers_count():
    # One token per byte is the worst a byte-level BPE can do; the fake counts words, the mock ~chars/4.
    text = "a " * 3000
    assert embeddings_tokens_bound(body(input=text), unbounded_tokens=8192) >= len(text.split())
    assert embeddings_tokens_bound(body(input=text), unbounded_tokens=8192) >= embeddings_tokens_estimate(body(input=text))


def test_the_estimate_counts_tokens_exactly_and_text_by_characters():
    assert embeddings_tokens_estimate(body(input="abcdefgh")) == 2
    assert embeddings_tokens_estimate(body(input=["abcd", "abcde"])) == 1 + 2
    assert embeddings_tokens_estimate(body(input=[[1, 2, 3], [4]])) == 4
    assert embeddings_tokens_estimate(body(input=[9, 9])) == 2


# --- the fake provider ------------------------------------------------------------------------


def fake_post(fake, payload, **headers):
    return httpx.post(fake.url + OPENAI_EMBEDDINGS, json=payload,
                      headers={"Authorization": "Bearer sk-test", **headers})


def test_the_fake_embeds_deterministically_as_floats(fake_provider):
    r = fake_post(fake_provider, {"model": "text-embedding-3-small", "input": ["one two", "three"],
                                  "encoding_format": "float"})
    assert r.status_code == 200 and r.headers["x-request-id"].startswith("req_")
    data = r.json()
    assert data["object"] == "list" and data["model"] == "text-embedding-3-small"
    assert data["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert [d["index"] for d in data["data"]] == [0, 1]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 1536 for d in data["data"])
    assert data["data"][0]["embedding"] == embedding_vector("one two", 1536)
    assert data["data"][0]["embedding"] != data["data"][1]["embedding"]
    assert all(-1 <= v < 1 for v in data["data"][1]["embedding"])
    assert fake_post(fake_provider, {"model": "text-embedding-3-small", "input": "three"}).json()["data"][0][
        "embedding"] == data["data"][1]["embedding"]


def test_the_fake_honours_dimensions_the_models_size_and_base64(fake_provider):
    large = fake_post(fake_provider, {"model": "text-embedding-3-large", "input": [[1, 2, 3]]}).json()
    assert len(large["data"][0]["embedding"]) == 3072 and large["usage"]["prompt_tokens"] == 3
    packed = fake_post(fake_provider, {"model": "text-embedding-3-large", "input": "hi", "dimensions": 64,
                                       "encoding_format": "base64"}).json()
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert len(raw) == 64 * 4
    assert array.array("f", raw).tolist() == embedding_vector("hi", 64)  # little-endian float32, exact


def test_the_fake_refuses_what_openai_refuses(fake_provider):
    for payload in ({"model": "text-embedding-3-small", "input": ["a", ""]},
                    {"model": "text-embedding-3-small", "input": []}):
        r = fake_post(fake_provider, payload)
        assert r.status_code == 400 and "'$.input' is invalid" in r.json()["error"]["message"]
    r = fake_post(fake_provider, {"model": "text-embedding-3-small", "input": "x", "dimensions": 4000})
    assert r.status_code == 400 and r.json()["error"]["param"] == "dimensions"
    r = fake_post(fake_provider, {"model": "text-embedding-3-small"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    assert httpx.post(fake_provider.url + OPENAI_EMBEDDINGS, json=body()).status_code == 401


def test_the_fake_can_be_scripted(fake_provider):
    fake_provider.enqueue(OPENAI_EMBEDDINGS, FakeResponse(usage={"prompt_tokens": 99, "total_tokens": 99}),
                          FakeResponse(status=503))
    assert fake_post(fake_provider, body()).json()["usage"]["prompt_tokens"] == 99
    assert fake_post(fake_provider, body()).status_code == 503
    assert fake_provider.requests_to(OPENAI_EMBEDDINGS)[0].json == body()


def test_the_official_sdk_decodes_the_fakes_default_base64(fake_provider):
    client = openai.OpenAI(base_url=fake_provider.url + "/v1", api_key="sk-test", max_retries=0)
    reply = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], dimensions=32)
    assert fake_provider.requests_to(OPENAI_EMBEDDINGS)[-1].json["encoding_format"] == "base64"
    assert [e.embedding for e in reply.data] == [embedding_vector("alpha", 32), embedding_vector("beta", 32)]
    assert reply.usage.prompt_tokens == 2 and reply.usage.total_tokens == 2


# --- the offline mock provider -----------------------------------------------------------------


def mock_post(payload: dict) -> dict:
    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.MockTransport(mock_handler)) as client:
            return await client.post("http://mock.invalid/embeddings", content=orjson.dumps(payload))

    response = asyncio.run(post())
    assert response.status_code == 200
    return response.json()


def test_the_mock_embeds_offline_honouring_dimensions_and_base64():
    data = mock_post({"model": "mock-embedding", "input": ["abcdefgh", "xyz"]})
    assert [len(d["embedding"]) for d in data["data"]] == [1536, 1536]
    assert data["data"][0]["embedding"] == mock_embedding_vector("abcdefgh", 1536)
    assert data["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    packed = mock_post({"model": "mock-embedding", "input": [[1, 2]], "dimensions": 16,
                              "encoding_format": "base64"})
    assert array.array("f", base64.b64decode(packed["data"][0]["embedding"])).tolist() == \
        mock_embedding_vector([1, 2], 16)
    assert packed["usage"]["prompt_tokens"] == 2
