"""responses_request_validate: OpenAI Responses bodies rejected with OpenAI's error shape and the
JSON path in `param`; what the gateway cannot honour refused with a 400 naming the field."""

from __future__ import annotations

import copy

import pytest

from core.errors import GatewayError
from ai_proxy.responses_format import responses_request_max_output, responses_request_validate

TOOL = {"type": "function", "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True}
PNG = "data:image/png;base64,iVBORw0KGgo="


def body(**extra):
    return {"model": "gpt-4o", "input": "Hi, I'm Alice", **extra}


def rejected(payload) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        responses_request_validate(payload)
    assert info.value.status == 400
    return info.value


def test_it_returns_a_valid_body_unchanged():
    payload = body(
        input=[
            {"role": "system", "content": "Be brief."},
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "In French."}]},
            {"role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": PNG, "detail": "low"},
                {"type": "input_image", "image_url": "https://example.com/a.png"},
                {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
            ]},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "A cat.", "annotations": []}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}",
             "id": "fc_1", "status": "completed"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_1", "output": [{"type": "input_text", "text": "x"}]},
        ],
        instructions="Answer briefly.", max_output_tokens=16, temperature=2, top_p=0, tools=[TOOL],
        tool_choice={"type": "function", "name": "get_weather"}, parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True},
              "verbosity": "low"},
        stream=True, stream_options={"include_obfuscation": False}, metadata={"k": "v"}, user="alice-1",
        store=False, previous_response_id=None, reasoning={"effort": "low", "summary": "auto"},
        truncation="disabled", include=["reasoning.encrypted_content"], service_tier="auto",
        safety_identifier="u1", prompt_cache_key="k", max_tool_calls=3, top_logprobs=0,
    )
    original = copy.deepcopy(payload)
    assert responses_request_validate(payload) is payload
    assert payload == original
    assert responses_request_max_output(payload) == 16


@pytest.mark.parametrize("choice", ["none", "auto", "required", {"type": "function", "name": "get_weather"},
                                    {"type": "allowed_tools", "mode": "required",
                                     "tools": [{"type": "function", "name": "get_weather"}]}])
def test_it_accepts_every_function_tool_choice(choice):
    responses_request_validate(body(tools=[TOOL], tool_choice=choice))


def test_it_needs_a_model_and_input():
    assert rejected({"input": "x"}).message == "you must provide a model parameter"
    error = rejected({"model": "gpt-4o"})
    assert (error.param, error.code) == ("input", "missing_required_parameter")
    error = rejected(body(input=[]))
    assert (error.param, error.code) == ("input", "empty_array")
    error = rejected(body(input=7))
    assert error.param == "input" and "string or array" in error.message
    assert rejected(["not", "an", "object"]).code == "invalid_type"


def test_it_refuses_store_true_and_previous_response_id_naming_the_field():
    error = rejected(body(store=True))
    assert (error.param, error.code) == ("store", "unsupported_parameter")
    assert "does not keep responses" in error.message and "store: false" in error.message
    error = rejected(body(previous_response_id="resp_123"))
    assert (error.param, error.code) == ("previous_response_id", "unsupported_parameter")
    assert "does not keep responses" in error.message
    assert rejected(body(conversation="conv_1")).param == "conversation"
    assert rejected(body(background=True)).param == "background"
    assert rejected(body(prompt={"id": "pmpt_1"})).param == "prompt"
    error = rejected(body(input=[{"type": "item_reference", "id": "msg_1"}]))
    assert error.param == "input[0].type" and "store: false" in error.message


def test_it_accepts_an_absent_or_false_store():
    responses_request_validate(body())
    responses_request_validate(body(store=False))
    responses_request_validate(body(store=None))


@pytest.mark.parametrize("kind", ["web_search", "web_search_preview", "file_search", "code_interpreter", "mcp",
                                  "computer_use_preview", "image_generation", "custom", "local_shell"])
def test_it_refuses_tools_other_than_functions_naming_them(kind):
    error = rejected(body(tools=[TOOL, {"type": kind}]))
    assert (error.param, error.code) == ("tools[1].type", "unsupported_parameter")
    assert f"`{kind}`" in error.message and "function" in error.message


@pytest.mark.parametrize("payload,param,code", [
    (body(input=[{"content": "x"}]), "input[0].type", "missing_required_parameter"),
    (body(input=[{"role": "tool", "content": "x"}]), "input[0].role", "invalid_value"),
    (body(input=[{"role": "user"}]), "input[0].content", "missing_required_parameter"),
    (body(input=[{"role": "user", "content": []}]), "input[0].content", "empty_array"),
    (body(input=[{"role": "user", "content": [{"type": "text", "text": "x"}]}]), "input[0].content[0].type",
     "invalid_value"),
    (body(input=[{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]),
     "input[0].content[0].type", "invalid_value"),
    (body(input=[{"role": "user", "content": [{"type": "input_text"}]}]), "input[0].content[0].text",
     "missing_required_parameter"),
    (body(input=[{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x/a.png"}]}]),
     "input[0].content[0].image_url", "invalid_value"),
    (body(input=[{"role": "user", "content": [{"type": "input_image", "image_url": PNG, "detail": "max"}]}]),
     "input[0].content[0].detail", "invalid_value"),
    (body(input=[{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]),
     "input[0].content[0].file_id", "unsupported_parameter"),
    (body(input=[{"role": "user", "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}]}]),
     "input[0].content[0].file_url", "unsupported_parameter"),
    (body(input=[{"type": "function_call", "call_id": "c", "name": "f"}]), "input[0].arguments",
     "missing_required_parameter"),
    (body(input=[{"type": "function_call_output", "output": "x"}]), "input[0].call_id",
     "missing_required_parameter"),
    (body(input=[{"type": "function_call_output", "call_id": "c", "output": 3}]), "input[0].output",
     "invalid_type"),
    (body(input=[{"type": "reasoning", "summary": []}]), "input[0].type", "unsupported_parameter"),
    (body(input=[{"type": "function_call_output", "call_id": "c", "output": [
        {"type": "input_text", "text": "x"}, {"type": "input_image", "image_url": PNG}]}]),
     "input[0].output[1].type", "unsupported_parameter"),
    (body(max_output_tokens=15), "max_output_tokens", "integer_below_min_value"),
    (body(max_output_tokens="16"), "max_output_tokens", "invalid_type"),
    (body(temperature=2.5), "temperature", "decimal_above_max_value"),
    (body(top_p=-0.1), "top_p", "decimal_below_min_value"),
    (body(stream="yes"), "stream", "invalid_type"),
    (body(stream_options={"include_obfuscation": True}), "stream_options", "invalid_value"),
    (body(metadata={"k": 1}), "metadata.k", "invalid_type"),
    (body(metadata={str(i): "v" for i in range(17)}), "metadata", "invalid_value"),
    (body(instructions=["x"]), "instructions", "invalid_type"),
    (body(tools=[{"type": "function", "name": "bad name"}]), "tools[0].name", "invalid_value"),
    (body(tools=[{"type": "function", "name": "f", "parameters": "x"}]), "tools[0].parameters", "invalid_type"),
    (body(tool_choice="required"), "tool_choice", "invalid_value"),
    (body(tools=[TOOL], tool_choice="sometimes"), "tool_choice", "invalid_value"),
    (body(tools=[TOOL], tool_choice={"type": "function", "name": "nope"}), "tool_choice.name", "invalid_value"),
    (body(tools=[TOOL], tool_choice={"type": "file_search"}), "tool_choice.type", "unsupported_parameter"),
    (body(text={"format": {"type": "yaml"}}), "text.format.type", "invalid_value"),
    (body(text={"format": {"type": "json_schema", "schema": {}}}), "text.format.name",
     "missing_required_parameter"),
    (body(text={"format": {"type": "json_schema", "name": "out"}}), "text.format.schema",
     "missing_required_parameter"),
    (body(text={"verbosity": "loud"}), "text.verbosity", "invalid_value"),
    (body(reasoning={"effort": "extreme"}), "reasoning.effort", "invalid_value"),
    (body(truncation="auto"), "truncation", "unsupported_parameter"),
    (body(truncation="sometimes"), "truncation", "invalid_value"),
    (body(include=["everything"]), "include[0]", "invalid_value"),
    (body(include=["message.output_text.logprobs"]), "include[0]", "unsupported_parameter"),
    (body(top_logprobs=5), "top_logprobs", "unsupported_parameter"),
    (body(service_tier="gold"), "service_tier", "invalid_value"),
    (body(seed=7), "seed", "unsupported_parameter"),
    (body(messages=[{"role": "user", "content": "x"}]), "messages", "unsupported_parameter"),
])
def test_it_rejects_bad_bodies_with_the_path(payload, param, code):
    error = rejected(payload)
    assert (error.param, error.code) == (param, code)
    assert error.message


def test_unknown_keys_set_to_null_are_ignored():
    responses_request_validate(body(seed=None, previous_response_id=None, conversation=None))
