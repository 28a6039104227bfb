"""The OpenAPI document (GET /api/ai/openapi.json) against the live gateway.

- It is valid OpenAPI 3.1 (openapi-spec-validator), public, and lists every /api/ai/ route Django
  serves and nothing it does not.
- schemathesis loads it from the live server and drives every operation with a real key on a
  catalog routed to the offline mock and the project's fake provider (loopback only): no 5xx, every
  status, content type, body, header and stream event as documented. Derandomized and bounded, so
  CI runs the same cases every time in well under a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, get_resolver
from openapi_spec_validator import validate

from orgs.members import staff_token_issue

def _document(url: str) -> dict:
    response = httpx.get(f"{url}/api/ai/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def _served_api_routes() -> set[str]:
    """Every /api/ai/ route in the URLconf, as OpenAPI paths ({name} for converters)."""
    import re

    out: set[str] = set()

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, route)
            elif isinstance(p, URLPattern):
                out.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))

    walk(get_resolver().url_patterns, "")
    return {p for p in out if p.startswith("/api/ai/") and "(?P" not in p and "^" not in p}


def test_it_is_valid_openapi_and_public(transactional_db, gateway_url):
    document = _document(gateway_url)  # no key
    assert document["openapi"].startswith("3.1")
    validate(document)
    schemes = document["components"]["securitySchemes"]
    assert schemes["BearerAuth"] == {**schemes["BearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["ApiKeyAuth"] == {**schemes["ApiKeyAuth"], "type": "apiKey", "in": "header", "name": "x-api-key"}


def test_it_documents_every_route_it_serves_and_nothing_else(transactional_db, gateway_url):
    documented = set(_document(gateway_url)["paths"])
    served = _served_api_routes() - {"/api/ai/openapi.json", "/api/ai/docs/", "/api/ai/docs"}
    assert documented == served, {"served, not documented": served - documented,
                                  "documented, not served": documented - served}


def test_every_routed_operation_is_documented_from_its_descriptor():
    from ai_proxy.openapi import operation_doc_problems, routed_operations

    routed = {path: op.label for path, op in routed_operations()}
    assert {"chat/completions": "chat completions", "anthropic/v1/messages": "messages",
            "anthropic/v1/messages/count_tokens": "count_tokens"}.items() <= routed.items(), routed
    assert not operation_doc_problems(), "\n".join(operation_doc_problems())


def test_an_operation_without_a_doc_is_named_with_what_to_add(monkeypatch):
    import dataclasses

    from ai_proxy import openapi
    from ai_proxy.operations import CHAT_COMPLETIONS

    bare = dataclasses.replace(CHAT_COMPLETIONS, name="embeddings", label="embeddings", doc=None)
    misnamed = dataclasses.replace(CHAT_COMPLETIONS, label="responses", doc=dataclasses.replace(
        CHAT_COMPLETIONS.doc, response="Nowhere"))
    monkeypatch.setattr(openapi, "routed_operations", lambda: [("embeddings", bare), ("responses", misnamed)])
    problems = openapi.operation_doc_problems()
    assert problems[0].startswith("Operation 'embeddings' is served at /api/ai/embeddings but has no `doc`")
    assert "doc=OperationDoc(summary=..., request=..., response=..., stream_event=...)" in problems[0]
    assert problems[1] == ("Operation 'responses' names schemas ['Nowhere'] that ai_proxy/wire_schemas.py does not "
                           "define: add them to COMPONENTS there.")
    assert openapi.hot_paths().keys() == {"/api/ai/anthropic/v1/models", "/api/ai/anthropic/v1/models/{model_id}"}


def test_the_hot_endpoints_document_their_errors_and_streams(transactional_db, gateway_url):
    paths = _document(gateway_url)["paths"]
    chat = paths["/api/ai/chat/completions"]["post"]
    assert chat["security"] == [{"BearerAuth": []}, {"ApiKeyAuth": []}]
    ok = chat["responses"]["200"]
    assert set(ok["content"]) == {"application/json", "text/event-stream"}
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletion"}
    for status in ("400", "401", "403", "404", "413", "429", "502", "503"):
        assert chat["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/OpenAIError"}, status
    too_many = chat["responses"]["429"]["headers"]
    assert {"retry-after", "x-should-retry", "x-ratelimit-remaining-requests"} <= set(too_many)
    messages = paths["/api/ai/anthropic/v1/messages"]["post"]
    assert messages["responses"]["429"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AnthropicError"}
    assert "anthropic-ratelimit-tokens-remaining" in messages["responses"]["200"]["headers"]


def test_the_docs_path_is_not_swallowed_by_the_json_404(transactional_db, gateway_url):
    page = httpx.get(f"{gateway_url}/api/ai/docs/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    asset = httpx.get(f"{gateway_url}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    moved = httpx.get(f"{gateway_url}/api/ai/docs")
    assert moved.status_code == 302 and moved.headers["location"] == "/api/ai/docs/"
    assert httpx.get(f"{gateway_url}/api/ai/docs/nothing").status_code == 404
    for path in ("/api/ai/docs/", "/api/ai/openapi.json"):
        refused = httpx.post(f"{gateway_url}{path}")
        assert refused.status_code == 405 and refused.json()["error"]["code"] == "method_not_allowed", path


# schemathesis' own pytest integration does not run on pytest 9.2 (it sets Node._nodeid), so its
# CLI runs against the live server: the same engine, phases and checks, and a readable report.
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "response_headers_conformance")
CONFIG = """
[auth.openapi.BearerAuth]
bearer = "${GATEWAY_KEY}"
[auth.openapi.ApiKeyAuth]
api_key = "${GATEWAY_KEY}"
[auth.openapi.StaffToken]
bearer = "${GATEWAY_STAFF_TOKEN}"
"""


def test_the_live_gateway_answers_every_operation_as_documented(gateway, tmp_path):
    staff = User.objects.create_user("olivia", password="olivia-pw", is_staff=True)
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    env = {**os.environ, "GATEWAY_KEY": gateway.key,
           "GATEWAY_STAFF_TOKEN": staff_token_issue(user=staff, actor="test").plaintext,
           "NO_COLOR": "1", "COLUMNS": "160"}
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(tmp_path / "schemathesis.toml"),
         "run", f"{gateway.url}/api/ai/openapi.json",
         "--checks", CHECKS, "--phases", "examples,coverage,fuzzing", "--mode", "all",
         "--max-examples", "12", "--generation-deterministic",  # the same cases every run
         "--workers", "1", "--request-timeout", "20", "--max-failures", "20"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    report = run.stdout + run.stderr
    print(report)  # shown with -s, or on failure
    assert run.returncode == 0, report[-20000:]
    assert time.monotonic() - started < 120, report[-3000:]  # about 20 s; a guard against runaway settings

    # The cases reached the providers in both dialects (the examples cross formats), and the
    # ledger has a successful row of each endpoint, streamed and not.
    upstream_paths = {r.path for r in gateway.fake.requests}
    assert {"/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens"} <= upstream_paths, upstream_paths
    from billing.metering import ledger_flush_sync
    from billing.models import UsageRecord

    ledger_flush_sync()
    ok = set(UsageRecord.objects.filter(status=200).values_list("endpoint", "streamed").distinct())
    assert {("openai", False), ("openai", True), ("anthropic", False), ("anthropic", True)} <= ok, ok
    assert ("count_tokens", False) in ok, ok
    assert not UsageRecord.objects.filter(status__gte=500).exists()
