"""The OpenAPI document (GET /api/ai/openapi.json) against the live gateway.

- It is valid OpenAPI 3.1 (openapi-spec-validator), public, and lists every /api/ai/ route Django
  serves and nothing it does not.
- schemathesis loads it from the live server and drives every operation with a real key on a
  catalog routed to the offline mock and the project's fake provider (loopback only): no 5xx, every
  status, content type and body as documented. Derandomized and bounded, so CI runs the same cases
  every time in well under a minute.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from orgs.members import staff_token_issue

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


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


def test_every_hot_operation_names_schemas_the_document_defines():
    from ai_proxy.openapi import HOT_OPERATIONS, operation_paths

    for op in HOT_OPERATIONS:
        operation_paths(op)  # raises LookupError naming what to add


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
    assert {"retry-after", "x-should-retry", "x-ratelimit-remaining-requests"} <= set(chat["responses"]["429"]["headers"])
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


@pytest.fixture
def api_schema(gateway):
    staff = User.objects.create_user("olivia", password="olivia-pw", is_staff=True)
    config = SchemathesisConfig.from_dict({
        "seed": 13,
        "generation": {"mode": "all", "max-examples": 12, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "auth": {"openapi": {
            "BearerAuth": {"bearer": gateway.key},
            "ApiKeyAuth": {"api_key": gateway.key},
            "StaffToken": {"bearer": staff_token_issue(user=staff, actor="test").plaintext},
        }},
    })
    return schemathesis.openapi.from_url(f"{gateway.url}/api/ai/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=12, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_the_live_gateway_answers_as_documented(case):
    case.call_and_validate(checks=CHECKS)
