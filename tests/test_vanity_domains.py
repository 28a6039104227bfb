"""A vanity domain serves its own organization: another tenant's key is refused there."""

from __future__ import annotations

import httpx
import pytest
from rest_framework.test import APIClient


pytestmark = pytest.mark.django_db(transaction=True)
BODY = {"model": "mock-echo", "messages": [{"role": "user", "content": "hi"}]}


def _chat(gateway, key: str, host: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/api/ai/chat/completions", json=BODY,
                      headers={"authorization": f"Bearer {key}", "host": host})


def test_an_orgs_key_works_on_its_own_domain(gateway):
    assert _chat(gateway, gateway.key, "api.alice.test").status_code == 200  # alice_org owns api.alice.test


def test_another_orgs_key_is_refused_on_the_domain(gateway, charlie_key):
    response = _chat(gateway, charlie_key, "api.alice.test:443")
    assert response.status_code == 401
    assert "api.alice.test" in response.json()["error"]["message"]
    assert _chat(gateway, charlie_key, "127.0.0.1").status_code == 200, "the shared hostname serves everyone"


def test_the_drf_endpoints_apply_the_same_rule(gateway, charlie_key):
    response = APIClient().get("/api/ai/models", HTTP_AUTHORIZATION=f"Bearer {charlie_key}", HTTP_HOST="api.alice.test")
    assert response.status_code == 401


def test_a_new_domain_applies_at_once(gateway, charlie_key, charlie_org):
    from orgs.models import VanityDomain

    assert _chat(gateway, gateway.key, "api.charlie.test").status_code == 200
    VanityDomain.objects.create(organization=charlie_org, hostname="api.charlie.test")
    assert _chat(gateway, gateway.key, "api.charlie.test").status_code == 401
