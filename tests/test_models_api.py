"""GET /api/ai/models and /api/ai/models/<id>: the OpenAI list format plus the catalog's metadata,
only for the models the key (and its organization) may use.

Alice's org owns the keys; Charlie's org is the outsider.
"""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest
from rest_framework.test import APIClient

from catalog.models import CatalogModel
from catalog.seed import MODELS
from orgs.services import api_key_issue

SEED = {spec["public_id"]: spec for spec in MODELS}


def get(path: str, plaintext: str):
    return APIClient().get(path, HTTP_AUTHORIZATION=f"Bearer {plaintext}")


def listed_ids(plaintext: str) -> list[str]:
    response = get("/api/ai/models", plaintext)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    return sorted(m["id"] for m in body["data"])


def assert_not_found(response, model_id: str) -> None:
    assert response.status_code == 404
    body = response.json()
    assert body["error"]["code"] == "model_not_found"
    assert body["error"]["param"] == "model"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["detail"] == f"The model `{model_id}` does not exist or you do not have access to it."


def test_it_describes_a_model_asked_for_by_its_alias(catalog, alice_key):
    response = get("/api/ai/models/gpt-4o-2024-08-06", alice_key)

    assert response.status_code == 200
    body = response.json()
    # The alias resolves to the catalog's public id: that is the name clients should store.
    assert body["id"] == "gpt-4o"
    assert body["object"] == "model"
    assert body["created"] == int(CatalogModel.objects.get(public_id="gpt-4o").created_at.timestamp())
    assert body["owned_by"] == "openai"
    assert body["provider"] == "OpenAI"
    assert body["display_name"] == "GPT-4o"
    assert body["best_for"] == "General chat, vision and tool use"
    assert (body["speed"], body["cost_tier"]) == ("fast", "medium")
    assert (body["max_output_tokens"], body["context_window"]) == (16384, 128000)
    assert body["pricing"] == {
        "currency": "USD",
        "unit": "per_million_tokens",
        "input": "2.500000",
        "output": "10.000000",
        "cache_read": "1.250000",
        "cache_write": "2.500000",
    }
    # Strings, not floats: exactly the seeded Decimals.
    prices = [Decimal(body["pricing"][k]) for k in ("input", "output", "cache_read", "cache_write")]
    assert tuple(prices) == SEED["gpt-4o"]["prices"]


def test_it_answers_the_same_for_the_public_id_and_the_alias(catalog, alice_key):
    by_alias = get("/api/ai/models/gpt-4o-2024-08-06", alice_key).json()
    by_id = get("/api/ai/models/gpt-4o", alice_key).json()

    assert by_alias == by_id


def test_it_lists_every_model_with_its_seeded_metadata(catalog, alice_key):
    response = get("/api/ai/models", alice_key)

    data = {m["id"]: m for m in response.json()["data"]}
    assert sorted(data) == sorted(SEED)
    for public_id, spec in SEED.items():
        model = data[public_id]
        assert model["object"] == "model"
        assert model["provider"] == spec["provider_label"]
        assert model["owned_by"] == spec["provider_label"].lower()
        assert (model["best_for"], model["speed"], model["cost_tier"]) == (
            spec["best_for"], spec["speed_tier"], spec["cost_tier"])
        prices = tuple(Decimal(model["pricing"][k]) for k in ("input", "output", "cache_read", "cache_write"))
        assert prices == spec["prices"], public_id


def test_it_returns_404_for_an_unknown_model(catalog, alice_key):
    assert_not_found(get("/api/ai/models/gpt-7", alice_key), "gpt-7")


def test_it_returns_404_for_a_model_the_key_may_not_use(catalog, alice_org):
    issued = api_key_issue(organization=alice_org, models=CatalogModel.objects.filter(public_id="mock-echo"),
                           actor="test")

    assert get("/api/ai/models/mock-echo", issued.plaintext).status_code == 200
    # Same answer as for a model that does not exist: the key learns nothing about the rest.
    assert_not_found(get("/api/ai/models/gpt-4o", issued.plaintext), "gpt-4o")
    assert_not_found(get("/api/ai/models/gpt-4o-2024-08-06", issued.plaintext), "gpt-4o-2024-08-06")


def test_it_lists_only_the_keys_allowed_models(catalog, alice_org, alice_key):
    issued = api_key_issue(
        organization=alice_org, models=CatalogModel.objects.filter(public_id__in=["mock-echo", "claude-3-haiku"]),
        actor="test",
    )

    assert listed_ids(issued.plaintext) == ["claude-3-haiku", "mock-echo"]
    # The org's other key is unrestricted.
    assert listed_ids(alice_key) == sorted(SEED)


def test_it_needs_a_key_for_a_model(catalog):
    response = APIClient().get("/api/ai/models/gpt-4o")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


# --- the organization's allowlist, enforced at request time --------------------------------


def test_it_applies_the_orgs_allowlist_to_the_list(catalog, alice_org, alice_key, charlie_key,
                                                  django_capture_on_commit_callbacks):
    assert listed_ids(alice_key) == sorted(SEED)  # the key's context is now cached

    with django_capture_on_commit_callbacks(execute=True):
        alice_org.allowed_models.set(CatalogModel.objects.filter(public_id="mock-echo"))

    assert listed_ids(alice_key) == ["mock-echo"]
    assert_not_found(get("/api/ai/models/gpt-4o", alice_key), "gpt-4o")
    # Another org's keys are untouched by Alice's allowlist.
    assert listed_ids(charlie_key) == sorted(SEED)


def test_it_refuses_a_chat_for_a_model_outside_the_orgs_allowlist(gateway, alice_org):
    client = gateway.openai()
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "echo: hi"

    alice_org.allowed_models.set(CatalogModel.objects.filter(public_id="mock-echo"))

    assert [m.id for m in client.models.list()] == ["mock-echo"]
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 403
    assert caught.value.code == "model_not_allowed"
    upstream_calls = len(gateway.fake.requests)
    reply = client.chat.completions.create(model="mock-echo", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    # The refused request never reached the provider.
    assert len(gateway.fake.requests) == upstream_calls
