"""Anthropic Messages request validation (ai_proxy.messages_format), rule by rule."""

from __future__ import annotations

import copy

import pytest

from core.errors import ANTHROPIC, GatewayError
from ai_proxy.messages_format import messages_count_tokens_validate, messages_request_validate

PNG = "iVBORw0KGgo="


def _body(**overrides) -> dict:
    body = {"model": "claude-sonnet-4", "max_tokens": 256, "messages": [{"role": "user", "content": "Hi, I'm Alice"}]}
    body.update(overrides)
    return body


def _tool_turns() -> list[dict]:
    return [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]},
    ]


def _rejects(body: object, param: str | None, fragment: str = "", *, count_tokens: bool = False) -> GatewayError:
    validate = messages_count_tokens_validate if count_tokens else messages_request_validate
    with pytest.raises(GatewayError) as caught:
        validate(body)
    err = caught.value
    assert err.status == 400
    assert err.param == param
    assert err.code == "invalid_request_error"
    assert fragment.lower() in err.message.lower()
    if param:
        assert err.message.startswith(f"{param}: ")
    return err


def test_it_accepts_a_full_request_and_returns_it_unchanged():
    body = _body(
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look:"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
                ],
            },
            *(_tool_turns()[1:2]),
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "18C"}],
                        "is_error": False,
                    },
                    {"type": "text", "text": "Thanks"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "xyz"},
                    {"type": "text", "text": "It is"},
                ],
            },
        ],
        temperature=0.5,
        top_p=1,
        top_k=40,
        stop_sequences=["\n\nHuman:"],
        stream=True,
        metadata={"user_id": "alice-123"},
        tools=[
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        ],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        thinking={"type": "enabled", "budget_tokens": 2048},
        service_tier="auto",
    )
    snapshot = copy.deepcopy(body)
    assert messages_request_validate(body) is body
    assert body == snapshot


def test_it_accepts_consecutive_same_role_messages_and_system_role_messages():
    body = _body(
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Hello"},
            {"role": "user", "content": [{"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "assistant", "content": ""},
        ]
    )
    assert messages_request_validate(body) is body


def test_it_accepts_tool_results_split_across_consecutive_user_messages():
    turns = _tool_turns()
    turns.append({"role": "user", "content": "and tomorrow?"})
    assert messages_request_validate(_body(messages=turns))


def test_it_requires_max_tokens_except_for_count_tokens():
    body = _body()
    del body["max_tokens"]
    _rejects(body, "max_tokens", "Field required")
    assert messages_count_tokens_validate(body) is body
    _rejects({**body, "max_tokens": "10"}, "max_tokens", "integer", count_tokens=True)


@pytest.mark.parametrize(
    "body, param, fragment",
    [
        ([], None, "must be a JSON object"),
        ("hi", None, "must be a JSON object"),
        ({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}, "model", "Field required"),
        (_body(model=""), "model", "non-empty"),
        (_body(model=3), "model", "non-empty"),
        (_body(max_tokens=True), "max_tokens", "integer"),
        (_body(max_tokens=0), "max_tokens", "greater than or equal to 1"),
        (_body(max_tokens=1.5), "max_tokens", "integer"),
        (_body(messages=[]), "messages", "At least one message"),
        (_body(messages="hi"), "messages", "array"),
        ({"model": "m", "max_tokens": 1}, "messages", "Field required"),
        (_body(messages=["hi"]), "messages[0]", "role"),
        (_body(messages=[{"role": "tool", "content": "x"}]), "messages[0].role", "'user' or 'assistant'"),
        (_body(messages=[{"role": "user"}]), "messages[0].content", "Field required"),
        (_body(messages=[{"role": "user", "content": 5}]), "messages[0].content", "string or an array"),
        (_body(messages=[{"role": "user", "content": ""}]), "messages[0]", "non-empty content"),
        (_body(messages=[{"role": "user", "content": []}]), "messages[0]", "non-empty content"),
        (
            _body(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b "}]),
            "messages[1].content",
            "trailing whitespace",
        ),
        (
            _body(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]),
            "messages[0].content[0].text",
            "non-empty",
        ),
        (
            _body(messages=[{"role": "user", "content": [{"type": "text"}]}]),
            "messages[0].content[0].text",
            "Field required",
        ),
        (_body(messages=[{"role": "user", "content": ["hi"]}]), "messages[0].content[0]", "object"),
        (
            _body(messages=[{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {}}]}]),
            "messages[0].content[0].type",
            "not allowed in user messages",
        ),
        (
            _body(
                messages=[
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]},
                ]
            ),
            "messages[1].content[0].type",
            "not allowed in assistant messages",
        ),
        (
            _body(messages=[{"role": "system", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]}]),
            "messages[0].content[0].type",
            "not allowed in system messages",
        ),
        (
            _body(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": PNG}}
                        ],
                    }
                ]
            ),
            "messages[0].content[0].source.media_type",
            "image/jpeg",
        ),
        (
            _body(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}],
                    }
                ]
            ),
            "messages[0].content[0].source.data",
            "Field required",
        ),
        (
            _body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "ftp", "url": "x"}}]}]),
            "messages[0].content[0].source.type",
            "'base64', 'url' or 'file'",
        ),
        (
            _body(messages=[{"role": "user", "content": [{"type": "image"}]}]),
            "messages[0].content[0].source",
            "Field required",
        ),
        (
            _body(messages=[{"role": "user", "content": [{"type": "document", "source": {"type": "zip"}}]}]),
            "messages[0].content[0].source.type",
            "",
        ),
        (_body(system=5), "system", "string or an array of text blocks"),
        (_body(system=[{"type": "image"}]), "system[0].type", "'text'"),
        (_body(system=[{"type": "text"}]), "system[0].text", "Field required"),
        (_body(temperature=1.5), "temperature", "between 0 and 1"),
        (_body(temperature=-0.1), "temperature", "between 0 and 1"),
        (_body(temperature="0.5"), "temperature", "number"),
        (_body(top_p=2), "top_p", "between 0 and 1"),
        (_body(top_k=0), "top_k", "positive integer"),
        (_body(top_k=True), "top_k", "positive integer"),
        (_body(stop_sequences="END"), "stop_sequences", "array of strings"),
        (_body(stop_sequences=["END", 3]), "stop_sequences[1]", "string"),
        (_body(stream="yes"), "stream", "boolean"),
        (_body(metadata="alice"), "metadata", "object"),
        (_body(metadata={"user_id": 7}), "metadata.user_id", "string"),
        (_body(metadata={"email": "a@b.c"}), "metadata.email", "Extra inputs"),
        (_body(tools={"name": "x"}), "tools", "array"),
        (
            _body(tools=[{"name": "bad name", "input_schema": {"type": "object"}}]),
            "tools[0].name",
            "^[a-zA-Z0-9_-]{1,128}$",
        ),
        (_body(tools=[{"name": "x" * 129, "input_schema": {"type": "object"}}]), "tools[0].name", "^[a-zA-Z0-9_-]"),
        (_body(tools=[{"name": "f"}]), "tools[0].input_schema", "Field required"),
        (_body(tools=[{"name": "f", "input_schema": {"type": "array"}}]), "tools[0].input_schema.type", "'object'"),
        (
            _body(tools=[{"name": "f", "description": 1, "input_schema": {"type": "object"}}]),
            "tools[0].description",
            "string",
        ),
        (
            _body(
                tools=[
                    {"name": "f", "input_schema": {"type": "object"}},
                    {"name": "f", "input_schema": {"type": "object"}},
                ]
            ),
            "tools[1].name",
            "unique",
        ),
        (_body(tool_choice="auto"), "tool_choice", "object"),
        (_body(tool_choice={"type": "required"}), "tool_choice.type", "'auto', 'any', 'tool' or 'none'"),
        (
            _body(tool_choice={"type": "none", "disable_parallel_tool_use": True}),
            "tool_choice.disable_parallel_tool_use",
            "'none'",
        ),
        (
            _body(tool_choice={"type": "auto", "disable_parallel_tool_use": "yes"}),
            "tool_choice.disable_parallel_tool_use",
            "boolean",
        ),
        (_body(tool_choice={"type": "tool"}), "tool_choice.name", "Field required"),
        (_body(tool_choice={"type": "tool", "name": "nope"}), "tool_choice.name", "not among the request's `tools`"),
        (_body(thinking={"type": "on"}), "thinking.type", "enabled"),
        (_body(thinking={"type": "enabled", "budget_tokens": 10}), "thinking.budget_tokens", "1024"),
        (_body(service_tier="priority"), "service_tier", "'auto' or 'standard_only'"),
    ],
)
def test_it_rejects_invalid_fields_naming_the_param(body, param, fragment):
    _rejects(body, param, fragment)


def test_it_validates_tool_use_and_tool_result_blocks():
    turns = _tool_turns()
    turns[1]["content"][1]["input"] = "city=Paris"
    _rejects(_body(messages=turns), "messages[1].content[1].input", "JSON object")

    turns = _tool_turns()
    del turns[1]["content"][1]["id"]
    _rejects(_body(messages=turns), "messages[1].content[1].id", "Field required")

    turns = _tool_turns()
    turns[2]["content"][0]["content"] = [{"type": "tool_use"}]
    _rejects(_body(messages=turns), "messages[2].content[0].content[0].type", "'text' or 'image'")

    turns = _tool_turns()
    turns[2]["content"][0]["is_error"] = "no"
    _rejects(_body(messages=turns), "messages[2].content[0].is_error", "boolean")

    turns = _tool_turns()
    turns[2]["content"][0]["content"] = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": PNG}}
    ]
    _rejects(_body(messages=turns), "messages[2].content[0].content[0].source.media_type", "image/png")


def test_it_rejects_a_tool_result_that_answers_no_tool_use():
    turns = _tool_turns()
    turns[2]["content"][0]["tool_use_id"] = "toolu_other"
    _rejects(_body(messages=turns), "messages[2].content[0].tool_use_id", "previous assistant message")


def test_it_rejects_a_tool_use_left_unanswered():
    turns = _tool_turns()
    turns[2] = {"role": "user", "content": "never mind"}
    _rejects(_body(messages=turns), "messages[1].content[1]", "no `tool_result`")


def test_it_renders_as_an_anthropic_invalid_request_error():
    with pytest.raises(GatewayError) as caught:
        messages_request_validate(_body(temperature=3))
    body = caught.value.body(ANTHROPIC, "req_1")
    assert body["type"] == "error"
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": "temperature: Input should be between 0 and 1, got 3",
    }
