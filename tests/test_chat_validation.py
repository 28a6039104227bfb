"""chat_request_validate: OpenAI chat-completions bodies rejected as OpenAI would, with the JSON path."""

from __future__ import annotations

import copy

import pytest

from ai_proxy.chat_format import chat_request_max_output, chat_request_validate, chat_stream_include_usage
from core.errors import GatewayError

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                         "parameters": {"type": "object", "properties": {}}}}


def body(**extra):
    return {"model": "claude-sonnet", "messages": [{"role": "user", "content": "Hi"}], **extra}


def rejected(payload) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        chat_request_validate(payload)
    assert info.value.status == 400
    return info.value


def test_it_returns_a_valid_body_unchanged():
    payload = body(
        messages=[
            {"role": "system", "content": "Be brief.", "name": "ops"},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "sunny"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Sunny."}, {"type": "refusal", "refusal": "x"}]},
            {"role": "assistant", "tool_calls": [
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        ],
        temperature=2, top_p=0, n=1, max_tokens=1, max_completion_tokens=500, presence_penalty=-2,
        frequency_penalty=2, stop=["a", "b", "c", "d"], stream=True, stream_options={"include_usage": True},
        tools=[TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False, user="alice-1", seed=7, metadata={"k": "v"}, reasoning_effort="low",
        response_format={"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}}},
    )
    original = copy.deepcopy(payload)
    assert chat_request_validate(payload) is payload
    assert payload == original


@pytest.mark.parametrize("choice", ["none", "auto", "required", {"type": "function", "function": {"name": "f"}},
                                    {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [TOOL]}}])
def test_it_accepts_every_tool_choice_form(choice):
    chat_request_validate(body(tools=[TOOL], tool_choice=choice))


@pytest.mark.parametrize("fmt", [{"type": "text"}, {"type": "json_object"},
                                 {"type": "json_schema", "json_schema": {"name": "x_1", "strict": True}}])
def test_it_accepts_every_response_format(fmt):
    chat_request_validate(body(response_format=fmt))


def test_it_accepts_nulls_for_optional_parameters():
    chat_request_validate(body(temperature=None, max_tokens=None, stop=None, tools=None, stream=None,
                               response_format=None, seed=None))


@pytest.mark.parametrize("payload", [[], "x", 3, None])
def test_it_rejects_a_body_that_is_not_an_object(payload):
    assert rejected(payload).code == "invalid_type"


@pytest.mark.parametrize("model", [None, "", "missing"])
def test_it_requires_a_model(model):
    payload = body(model=model)
    if model == "missing":
        del payload["model"]
    err = rejected(payload)
    assert err.message == "you must provide a model parameter"
    assert err.param is None


def test_it_rejects_a_non_string_model():
    assert rejected(body(model=5)).param == "model"


def test_it_requires_messages():
    payload = body()
    del payload["messages"]
    err = rejected(payload)
    assert (err.param, err.code) == ("messages", "missing_required_parameter")
    assert err.message == "Missing required parameter: 'messages'."


def test_it_rejects_empty_messages():
    err = rejected(body(messages=[]))
    assert (err.param, err.code) == ("messages", "empty_array")


def test_it_rejects_a_message_that_is_not_an_object():
    assert rejected(body(messages=["hi"])).param == "messages[0]"


def test_it_rejects_an_unknown_role():
    err = rejected(body(messages=[{"role": "bot", "content": "x"}]))
    assert (err.param, err.code) == ("messages[0].role", "invalid_value")
    assert "'bot'" in err.message and "'assistant'" in err.message


def test_it_requires_content_for_user_messages():
    err = rejected(body(messages=[{"role": "user"}]))
    assert (err.param, err.code) == ("messages[0].content", "missing_required_parameter")


def test_it_rejects_content_of_the_wrong_type():
    err = rejected(body(messages=[{"role": "user", "content": 42}]))
    assert (err.param, err.code) == ("messages[0].content", "invalid_type")


def test_it_rejects_an_empty_content_array():
    assert rejected(body(messages=[{"role": "user", "content": []}])).code == "empty_array"


@pytest.mark.parametrize("role, part", [
    ("system", {"type": "image_url", "image_url": {"url": "https://x/a.png"}}),
    ("developer", {"type": "refusal", "refusal": "no"}),
    ("tool", {"type": "image_url", "image_url": {"url": "https://x/a.png"}}),
    ("assistant", {"type": "image_url", "image_url": {"url": "https://x/a.png"}}),
    ("user", {"type": "refusal", "refusal": "no"}),
    ("user", {"type": "video"}),
])
def test_it_rejects_part_types_the_role_cannot_carry(role, part):
    message = {"role": role, "content": [{"type": "text", "text": "ok"}, part]}
    if role == "tool":
        message["tool_call_id"] = "call_1"
    err = rejected(body(messages=[{"role": "user", "content": "x"}, message]))
    assert (err.param, err.code) == ("messages[1].content[1].type", "invalid_value")


@pytest.mark.parametrize("part, param", [
    ({"type": "text"}, "messages[0].content[0].text"),
    ({"type": "text", "text": 3}, "messages[0].content[0].text"),
    ({"text": "x"}, "messages[0].content[0].type"),
    ({"type": "image_url", "image_url": {}}, "messages[0].content[0].image_url.url"),
    ({"type": "image_url", "image_url": "https://x/a.png"}, "messages[0].content[0].image_url"),
    ({"type": "image_url", "image_url": {"url": "https://x", "detail": "max"}},
     "messages[0].content[0].image_url.detail"),
    ({"type": "input_audio", "input_audio": {"data": "AAA", "format": "ogg"}},
     "messages[0].content[0].input_audio.format"),
    ({"type": "file", "file": {"filename": "a.pdf"}}, "messages[0].content[0].file.file_data"),
])
def test_it_validates_user_parts(part, param):
    assert rejected(body(messages=[{"role": "user", "content": [part]}])).param == param


def test_it_requires_assistant_content_without_tool_calls():
    err = rejected(body(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": None}]))
    assert err.param == "messages[1].content"


@pytest.mark.parametrize("call, param", [
    ({"type": "function", "function": {"name": "f", "arguments": "{}"}}, "messages[1].tool_calls[0].id"),
    ({"id": "c", "type": "tool", "function": {"name": "f", "arguments": "{}"}}, "messages[1].tool_calls[0].type"),
    ({"id": "c", "type": "function"}, "messages[1].tool_calls[0].function"),
    ({"id": "c", "type": "function", "function": {"arguments": "{}"}}, "messages[1].tool_calls[0].function.name"),
    ({"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}},
     "messages[1].tool_calls[0].function.arguments"),
])
def test_it_validates_tool_calls(call, param):
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}]
    assert rejected(body(messages=messages)).param == param


def test_it_rejects_an_empty_tool_calls_list():
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "tool_calls": []}]
    assert rejected(body(messages=messages)).param == "messages[1].tool_calls"


def test_it_requires_tool_call_id_on_tool_messages():
    err = rejected(body(messages=[{"role": "tool", "content": "42"}]))
    assert (err.param, err.code) == ("messages[0].tool_call_id", "missing_required_parameter")


@pytest.mark.parametrize("key, value, code", [
    ("temperature", 2.01, "decimal_above_max_value"),
    ("temperature", -0.1, "decimal_below_min_value"),
    ("temperature", "1", "invalid_type"),
    ("top_p", 1.5, "decimal_above_max_value"),
    ("presence_penalty", -2.5, "decimal_below_min_value"),
    ("frequency_penalty", 3, "decimal_above_max_value"),
    ("n", 0, "integer_below_min_value"),
    ("n", 1.5, "invalid_type"),
    ("max_tokens", 0, "integer_below_min_value"),
    ("max_tokens", True, "invalid_type"),
    ("max_tokens", 10.0, "invalid_type"),
    ("max_completion_tokens", -5, "integer_below_min_value"),
    ("max_completion_tokens", False, "invalid_type"),
    ("temperature", True, "invalid_type"),
    ("seed", "7", "invalid_type"),
])
def test_it_checks_numbers_and_rejects_booleans_as_numbers(key, value, code):
    err = rejected(body(**{key: value}))
    assert (err.param, err.code) == (key, code)


def test_it_words_range_errors_like_openai():
    err = rejected(body(temperature=3))
    assert err.message == ("Invalid 'temperature': decimal above maximum value. Expected a value <= 2, "
                           "but got 3 instead.")


@pytest.mark.parametrize("stop, param, code", [
    (["a", "b", "c", "d", "e"], "stop", "array_above_max_length"),
    (["a", 1], "stop[1]", "invalid_type"),
    (5, "stop", "invalid_type"),
])
def test_it_validates_stop(stop, param, code):
    err = rejected(body(stop=stop))
    assert (err.param, err.code) == (param, code)


def test_it_accepts_stop_as_string_or_list():
    chat_request_validate(body(stop="END"))
    chat_request_validate(body(stop=["END", "STOP"]))


def test_it_rejects_a_non_boolean_stream():
    assert rejected(body(stream="yes")).param == "stream"


def test_it_allows_stream_options_only_when_streaming():
    err = rejected(body(stream_options={"include_usage": True}))
    assert err.param == "stream_options"
    assert "only allowed when 'stream' is enabled" in err.message
    assert rejected(body(stream=True, stream_options={"include_usage": "y"})).param == "stream_options.include_usage"
    assert rejected(body(stream=True, stream_options=[])).param == "stream_options"


@pytest.mark.parametrize("name", ["get weather", "", "x" * 65, "naïve", "a.b", "ok\n"])
def test_it_rejects_bad_tool_names(name):
    tool = {"type": "function", "function": {"name": name}}
    assert rejected(body(tools=[tool])).param == "tools[0].function.name"


def test_it_accepts_a_64_character_tool_name():
    chat_request_validate(body(tools=[{"type": "function", "function": {"name": "a-_9" * 16}}]))


@pytest.mark.parametrize("tools, param", [
    ({"type": "function"}, "tools"),
    ([], "tools"),
    (["get_weather"], "tools[0]"),
    ([{"type": "retrieval"}], "tools[0].type"),
    ([{"type": "function"}], "tools[0].function"),
    ([{"type": "function", "function": {"name": "f", "parameters": "{}"}}], "tools[0].function.parameters"),
])
def test_it_validates_tools(tools, param):
    assert rejected(body(tools=tools)).param == param


@pytest.mark.parametrize("choice, param", [
    ("always", "tool_choice"),
    ({"type": "function"}, "tool_choice.function"),
    ({"type": "function", "function": {}}, "tool_choice.function.name"),
    ({"type": "tool", "name": "f"}, "tool_choice.type"),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "any", "tools": [TOOL]}}, "tool_choice.allowed_tools.mode"),
])
def test_it_validates_tool_choice(choice, param):
    assert rejected(body(tools=[TOOL], tool_choice=choice)).param == param


def test_it_rejects_tool_choice_and_parallel_tool_calls_without_tools():
    assert rejected(body(tool_choice="auto")).param == "tool_choice"
    assert rejected(body(parallel_tool_calls=False)).param == "parallel_tool_calls"
    assert rejected(body(tools=[TOOL], parallel_tool_calls="no")).param == "parallel_tool_calls"


@pytest.mark.parametrize("fmt, param", [
    ("json", "response_format"),
    ({"type": "xml"}, "response_format.type"),
    ({"type": "json_schema"}, "response_format.json_schema"),
    ({"type": "json_schema", "json_schema": {"schema": {}}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "a b"}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "a", "schema": []}}, "response_format.json_schema.schema"),
])
def test_it_validates_response_format(fmt, param):
    assert rejected(body(response_format=fmt)).param == param


def test_it_validates_user_metadata_and_enums():
    assert rejected(body(user=5)).param == "user"
    assert rejected(body(metadata={"k": 1})).param == "metadata.k"
    assert rejected(body(service_tier="gold")).param == "service_tier"
    assert rejected(body(reasoning_effort="extreme")).param == "reasoning_effort"
    assert rejected(body(logit_bias={"50256": 101})).param == "logit_bias.50256"


def test_it_reports_the_max_output_the_client_asked_for():
    assert chat_request_max_output(body()) is None
    assert chat_request_max_output(body(max_tokens=100)) == 100
    assert chat_request_max_output(body(max_completion_tokens=50)) == 50
    assert chat_request_max_output(body(max_tokens=100, max_completion_tokens=50)) == 50
    assert chat_request_max_output(body(max_tokens=100, max_completion_tokens=None)) == 100


def test_it_reports_whether_usage_is_included_in_the_stream():
    assert chat_stream_include_usage(body(stream=True, stream_options={"include_usage": True}))
    assert not chat_stream_include_usage(body(stream=True))
    assert not chat_stream_include_usage(body(stream=False, stream_options={"include_usage": True}))
