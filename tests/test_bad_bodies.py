"""Hostile or broken request bodies get a 400 in the route's own error format, never a 500."""

from __future__ import annotations

import socket

import anthropic
import openai
import orjson
import pytest


pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("block_type", [["text"], {"type": "text"}])
def test_a_content_block_type_that_is_a_list_or_object_is_a_400_on_messages(gateway, block_type):
    messages = [{"role": "user", "content": [{"type": block_type, "text": "hi"}]}]
    client = gateway.anthropic()
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(model="claude-3-5-sonnet", max_tokens=10, messages=messages)
    assert exc.value.body["error"] == {
        "type": "invalid_request_error",
        "message": "messages[0].content[0].type: Field required: each content block needs a string `type`",
    }
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.count_tokens(model="claude-3-5-sonnet", messages=messages)
    assert exc.value.body["error"]["type"] == "invalid_request_error"
    assert exc.value.body["detail"].startswith("messages[0].content[0].type: ")


@pytest.mark.parametrize("part_type", [["text"], {"type": "text"}])
def test_a_content_part_type_that_is_a_list_or_object_is_a_400_on_chat_completions(gateway, part_type):
    with pytest.raises(openai.BadRequestError) as exc:
        gateway.openai().chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": [{"type": part_type, "text": "hi"}]}])
    assert exc.value.body["param"] == "messages[0].content[0].type"
    assert exc.value.body["type"] == "invalid_request_error"


def _raw_post(url: str, path: str, key: str, body: bytes) -> tuple[int, dict]:
    """POST with `Transfer-Encoding: chunked` and `body` written verbatim after the headers."""
    host, port = url.removeprefix("http://").split(":")
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    status_line, _, rest = raw.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), orjson.loads(payload)


MALFORMED_CHUNKS = {
    "size is not hex": b"ZZ\r\n{}\r\n0\r\n\r\n",
    "chunk longer than its size": b"2\r\n{\"model\": 1}\r\n0\r\n\r\n",
    "body ends inside a chunk": b"40\r\n{\"model\": \"gpt-4o\"",
}


@pytest.mark.parametrize("chunks", MALFORMED_CHUNKS.values(), ids=MALFORMED_CHUNKS.keys())
def test_a_malformed_chunked_body_is_a_400_in_the_routes_format(served, chunks):
    url, _proc, key, _fake = served
    status, body = _raw_post(url, "/api/ai/chat/completions", key, chunks)
    assert status == 400
    assert body["error"]["code"] == "invalid_request_body" and body["error"]["type"] == "invalid_request_error"
    assert body["detail"] == body["error"]["message"]
    for path in ("/api/ai/anthropic/v1/messages", "/api/ai/anthropic/v1/messages/count_tokens"):
        status, body = _raw_post(url, path, key, chunks)
        assert status == 400
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        assert "chunked transfer encoding is malformed" in body["detail"]


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("model", ["mock-echo", "claude-3-5-sonnet"])
def test_a_body_nested_past_what_can_be_sent_upstream_is_a_400(gateway, model):
    # orjson writes at most 255 levels: a tool schema 300 deep used to fail on its way upstream.
    tools = [{"name": "deep", "input_schema": {"type": "object", "properties": _nested(300)}}]
    client = gateway.anthropic()
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(model=model, max_tokens=5, messages=[{"role": "user", "content": "hi"}], tools=tools)
    assert exc.value.body["error"]["message"] == "Request body is nested more than 128 levels deep."
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "hi"}], tools=tools)
    schema = {"type": "json_schema", "json_schema": {"name": "deep", "schema": _nested(300)}}
    with pytest.raises(openai.BadRequestError) as exc:
        gateway.openai().chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], response_format=schema)
    assert exc.value.body["code"] == "invalid_json"
    # 100 levels is within the limit and goes through.
    tools[0]["input_schema"]["properties"] = _nested(100)
    client.messages.create(model=model, max_tokens=5, messages=[{"role": "user", "content": "hi"}], tools=tools)
