"""The Host header on /api/ai/: one well-formed hostname the gateway serves, or a 400 in the
route's error format. Malformed hosts must never slip past the vanity-domain binding."""

from __future__ import annotations

import asyncio
import http.client
import socket
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = {"model": "mock-echo", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "mock-echo", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def raw_post(url: str, path: str, host_lines: list[str], key: str, body: dict,
             version: str = "HTTP/1.1") -> tuple[int, dict]:
    """A POST written byte by byte: HTTP clients refuse to send two Host headers or none."""
    payload = orjson.dumps(body)
    head = [f"POST {path} {version}", *host_lines, f"authorization: Bearer {key}",
            "content-type: application/json", "anthropic-version: 2023-06-01",
            f"content-length: {len(payload)}", "connection: close"]
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, orjson.loads(response.read())


@pytest.mark.parametrize("host_lines", [
    ["host: api.alice.test:443:80"],
    ["host: api.alice.test,"],
    ["host: user@api.alice.test"],
    ["host: api.alice.test/x"],
    ["host: api.alice.test:99999"],
])
def test_a_malformed_host_is_refused_not_read_as_another_host(gateway, charlie_key, host_lines):
    # Charlie's key is refused on Alice's domain; a Host that names it badly must not get around that.
    status, body = raw_post(gateway.url, "/api/ai/chat/completions", host_lines, charlie_key, CHAT)
    assert status == 400
    assert body["error"]["code"] == "invalid_host" and "Host" in body["detail"]


def asgi_post(host_headers: list[bytes], key: str) -> tuple[int, dict]:
    """Straight into the ASGI application: uvicorn's parser already refuses two Host headers,
    other servers (granian) may pass them on, and Django would join them into one "a,b"."""
    from gateway_site.asgi import application

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": orjson.dumps(CHAT), "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/api/ai/chat/completions", "raw_path": b"/api/ai/chat/completions",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
        "headers": [*((b"host", h) for h in host_headers), (b"content-type", b"application/json"),
                    (b"authorization", f"Bearer {key}".encode())],
    }
    asyncio.run(application(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], orjson.loads(body)


@pytest.mark.parametrize("hosts", [[b"api.alice.test", b"127.0.0.1"], [b"127.0.0.1", b"api.alice.test"]])
def test_two_host_headers_are_refused(gateway, charlie_key, hosts):
    status, body = asgi_post(hosts, charlie_key)
    assert status == 400
    assert body["error"]["code"] == "invalid_host" and "more than one Host" in body["detail"]


def test_a_request_without_a_host_is_refused(gateway, charlie_key):
    status, body = raw_post(gateway.url, "/api/ai/chat/completions", [], charlie_key, CHAT, version="HTTP/1.0")
    assert status == 400
    assert body["error"]["code"] == "invalid_host" and "no Host header" in body["detail"]


def test_the_anthropic_routes_refuse_it_in_anthropics_format(gateway, charlie_key):
    status, body = raw_post(gateway.url, "/api/ai/anthropic/v1/messages", ["host: api.alice.test:443:80"],
                            charlie_key, MESSAGES)
    assert status == 400
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "Malformed Host header" in body["error"]["message"] and body["detail"]


def test_a_well_formed_host_still_works_with_and_without_a_port(gateway):
    for host in ("127.0.0.1", "API.Alice.Test.:8443", "api.alice.test"):
        status, _ = raw_post(gateway.url, "/api/ai/chat/completions", [f"host: {host}"], gateway.key, CHAT)
        assert status == 200, host


def _get_models(gateway, host: str, key: str) -> httpx.Response:
    return httpx.get(f"{gateway.url}/api/ai/models", headers={"authorization": f"Bearer {key}", "host": host})


def _chat(gateway, host: str, key: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/api/ai/chat/completions", json=CHAT,
                      headers={"authorization": f"Bearer {key}", "host": host})


def test_allowed_hosts_is_enforced_on_the_api(gateway, settings):
    settings.ALLOWED_HOSTS = ["gateway.example.com", ".internal.example"]
    assert _chat(gateway, "gateway.example.com", gateway.key).status_code == 200
    assert _chat(gateway, "gw1.internal.example:19000", gateway.key).status_code == 200
    for response in (_chat(gateway, "elsewhere.example", gateway.key),
                     _get_models(gateway, "elsewhere.example", gateway.key)):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_host"
        assert "not served" in response.json()["detail"]


def test_registered_vanity_domains_are_allowed_without_editing_settings(gateway, settings, charlie_org, charlie_key):
    from orgs.models import VanityDomain

    settings.ALLOWED_HOSTS = ["gateway.example.com"]
    assert _chat(gateway, "api.alice.test", gateway.key).status_code == 200
    assert _get_models(gateway, "api.alice.test", gateway.key).status_code == 200
    assert _chat(gateway, "api.charlie.test", charlie_key).status_code == 400
    VanityDomain.objects.create(organization=charlie_org, hostname="api.charlie.test")
    assert _chat(gateway, "api.charlie.test", charlie_key).status_code == 200
    assert _chat(gateway, "api.charlie.test", gateway.key).status_code == 401, "the binding still applies"
