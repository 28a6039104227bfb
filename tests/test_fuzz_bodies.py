"""Property: no request body, however hostile, makes the gateway answer 5xx; every 4xx carries the
route's native error body.

Hypothesis builds bodies that look like real requests (the fields each format has, the block and
part types it knows) with hostile values anywhere: wrong types, lists and objects where a string
is expected (in `type` fields too), huge and negative numbers, NaN and Infinity tokens, numeric
strings, unicode, missing fields, fields of the other format. They go to the live gateway over
HTTP, on a key with a TPM limit and an organization with a hard budget, so admission and the
reservation see them too. Deterministic (derandomized, no example database) and bounded for CI.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis caches (unicode tables, constants) go to the temp dir, not a .hypothesis/ in the repo.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "gateway-hypothesis"))

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ = settings(
    max_examples=300,
    derandomize=True,
    database=None,  # nothing written into the repository
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- values ----------------------------------------------------------------------------------

WORDS = st.sampled_from([
    "", " ", "text", "image", "image_url", "tool_use", "tool_result", "document", "thinking", "file",
    "user", "assistant", "system", "tool", "function", "developer", "auto", "any", "none", "required",
    "base64", "url", "json_schema", "json_object", "object", "high", "NaN", "Infinity", "-1", "1e309",
    "\u0000", "🙂", "漢字", "data:image/png;base64,iVBORw0KGgo=", "a" * 300,
])
TEXT = st.one_of(WORDS, st.text(max_size=30))
NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 2**64, 10**400, 1.5]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
ANY = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)


# --- valid requests, then a few hostile mutations ---------------------------------------------
#
# Bodies drawn freely are almost all refused at the first field; real attacks are valid
# requests with one or two hostile values. So each example is a valid body of its format with
# one to three mutations at random places: a value replaced by anything, a key removed, a field
# (often the other format's) added.

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
PROSE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40).filter(
    lambda t: t.strip() == t and t.strip())

CHAT_USER = st.one_of(
    st.builds(lambda t: {"role": "user", "content": t}, PROSE),
    st.builds(lambda t: {"role": "user", "content": [
        {"type": "text", "text": t},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}}]}, PROSE),
)
CHAT_VALID = st.fixed_dictionaries(
    {"model": st.just("mock-echo"),
     "messages": st.builds(lambda system, user: ([{"role": "system", "content": system}] if system else []) + [user],
                           st.one_of(st.none(), PROSE), CHAT_USER)},
    optional={
        "max_tokens": st.integers(1, 20), "n": st.integers(1, 2), "temperature": st.floats(0, 2),
        "stream": st.booleans(), "stop": st.lists(PROSE, max_size=2), "seed": st.integers(0, 10),
        "tools": st.just([{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]),
        "response_format": st.just({"type": "json_schema", "json_schema": {
            "name": "answer", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}),
    },
)

ANTHROPIC_USER = st.one_of(
    st.builds(lambda t: {"role": "user", "content": t}, PROSE),
    st.builds(lambda t: {"role": "user", "content": [
        {"type": "text", "text": t},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}, PROSE),
)
TOOL_TURNS = [
    {"role": "user", "content": "What time is it?"},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "noon"}]},
]
ANTHROPIC_TOOLS = [{"name": "get_time", "input_schema": {"type": "object"}}]


def _anthropic_valid(with_max_tokens: bool) -> st.SearchStrategy:
    required = {
        "model": st.sampled_from(["mock-echo", "claude-3-5-sonnet"]),
        "messages": st.one_of(st.builds(lambda u: [u], ANTHROPIC_USER), st.just(TOOL_TURNS)),
    }
    if with_max_tokens:
        required["max_tokens"] = st.integers(1, 20)
    return st.fixed_dictionaries(required, optional={
        "system": PROSE, "temperature": st.floats(0, 1), "stream": st.booleans(),
        "stop_sequences": st.lists(PROSE, max_size=2), "metadata": st.just({"user_id": "u1"}),
        "tools": st.just(ANTHROPIC_TOOLS), "tool_choice": st.just({"type": "auto"}),
    })


RESPONSES_USER = st.one_of(
    PROSE,
    st.builds(lambda t: [{"role": "user", "content": t}], PROSE),
    st.builds(lambda t: [{"role": "user", "content": [
        {"type": "input_text", "text": t},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "high"}]}], PROSE),
    st.just([
        {"role": "user", "content": "What time is it?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "noon"},
    ]),
)
RESPONSES_VALID = st.fixed_dictionaries(
    # max_output_tokens always, so admission reserves the client's own cap (not the model's maximum).
    {"model": st.sampled_from(["mock-echo", "claude-3-5-sonnet"]), "input": RESPONSES_USER,
     "max_output_tokens": st.integers(16, 40)},
    optional={
        "instructions": PROSE, "temperature": st.floats(0, 1),
        "stream": st.booleans(), "store": st.just(False),
        "tools": st.just([{"type": "function", "name": "get_time", "parameters": {"type": "object"}}]),
        "text": st.just({"format": {"type": "json_schema", "name": "answer",
                                    "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}),
    },
)
EMBEDDINGS_VALID = st.fixed_dictionaries(
    {"model": st.just("mock-embedding"),
     "input": st.one_of(PROSE, st.lists(PROSE, min_size=1, max_size=3), st.lists(st.integers(0, 100_000), min_size=1,
                        max_size=5), st.lists(st.lists(st.integers(0, 100_000), min_size=1, max_size=3), min_size=1,
                                              max_size=2))},
    optional={"dimensions": st.integers(1, 64), "encoding_format": st.sampled_from(["float", "base64"]),
              "user": PROSE},
)


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


# Past what orjson writes (255 levels), or just within what the gateway accepts.
DEEP = st.sampled_from([100, 300]).map(_nested)
HOSTILE = st.one_of(ANY, ANY, ANY, ANY, DEEP)
HOSTILE_FIELDS = st.sampled_from([
    "n", "max_completion_tokens", "max_tokens", "response_format", "stream_options", "tools", "tool_choice",
    "system", "top_k", "logit_bias", "messages", "model", "type", "content", "role", "text", "source",
    "input", "instructions", "max_output_tokens", "call_id", "output", "format", "previous_response_id",
])


def _paths(value, path=()):
    """Every (path) to a value inside `value`, the root excluded."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield path + (key,)
            yield from _paths(child, path + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield path + (index,)
            yield from _paths(child, path + (index,))


def _mutate(data, body: dict) -> dict:
    body = copy.deepcopy(body)  # st.just() values are shared between examples
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = list(_paths(body))
        if not paths:  # every field deleted already (a body of two fields): send it as it is
            break
        target = data.draw(st.sampled_from(paths), label="where")
        parent = body
        for step in target[:-1]:
            parent = parent[step]
        action = data.draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]), label="action")
        if action == "replace":
            parent[target[-1]] = data.draw(HOSTILE, label="value")
        elif action == "delete":
            del parent[target[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(HOSTILE_FIELDS, label="field")] = data.draw(HOSTILE, label="value")
        else:
            parent.append(data.draw(HOSTILE, label="value"))
    return body


# --- the property ----------------------------------------------------------------------------


@pytest.fixture
def client(gateway, alice_org):
    """A key with a TPM limit, in an organization with a hard budget: every admission path runs."""
    from orgs.services import api_key_issue
    from tests.proxy_helpers import set_budget

    set_budget(alice_org, "1000")
    key = api_key_issue(organization=alice_org, label="fuzz", tpm_limit=10**9, rpm_limit=10**6).plaintext
    with httpx.Client(base_url=f"{gateway.url}/api/ai", timeout=30,
                      headers={"authorization": f"Bearer {key}", "content-type": "application/json"}) as http:
        yield http


def _encode(body: dict) -> bytes:
    # The stdlib encoder, not orjson: it writes what orjson refuses to (NaN, Infinity, integers
    # past 64 bits), which a hostile client can send too.
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _assert_no_5xx(response: httpx.Response, client_format: str) -> None:
    event(f"HTTP {response.status_code}")
    assert response.status_code < 500, response.text[:2000]
    if response.status_code < 400:
        return
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"]
    if client_format == "anthropic":
        assert body["type"] == "error" and isinstance(body["error"]["type"], str), body
    else:
        assert isinstance(body["error"]["message"], str) and "type" in body["error"], body
    assert body["detail"] == body["error"]["message"]


@FUZZ
@given(data=st.data())
def test_no_chat_completions_body_is_a_5xx(client, data):
    body = _mutate(data, data.draw(CHAT_VALID, label="body"))
    _assert_no_5xx(client.post("/chat/completions", content=_encode(body)), "openai")


@FUZZ
@given(data=st.data())
def test_no_messages_body_is_a_5xx(client, data):
    body = _mutate(data, data.draw(_anthropic_valid(with_max_tokens=True), label="body"))
    _assert_no_5xx(client.post("/anthropic/v1/messages", content=_encode(body)), "anthropic")


@FUZZ
@given(data=st.data())
def test_no_count_tokens_body_is_a_5xx(client, data):
    body = _mutate(data, data.draw(_anthropic_valid(with_max_tokens=False), label="body"))
    _assert_no_5xx(client.post("/anthropic/v1/messages/count_tokens", content=_encode(body)), "anthropic")


@FUZZ
@given(data=st.data())
def test_no_embeddings_body_is_a_5xx(client, data):
    body = _mutate(data, data.draw(EMBEDDINGS_VALID, label="body"))
    _assert_no_5xx(client.post("/embeddings", content=_encode(body)), "openai")


@FUZZ
@given(data=st.data())
def test_no_responses_body_is_a_5xx(client, data):
    body = _mutate(data, data.draw(RESPONSES_VALID, label="body"))
    _assert_no_5xx(client.post("/responses", content=_encode(body)), "openai")
