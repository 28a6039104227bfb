import pytest
from rest_framework.test import APIClient


@pytest.mark.django_db
def test_it_lists_models_for_a_key(catalog, alice_key):
    client = APIClient()
    response = client.get("/api/ai/models", HTTP_AUTHORIZATION=f"Bearer {alice_key}")
    assert response.status_code == 200
    ids = {m["id"] for m in response.json()["data"]}
    assert {"gpt-4o", "claude-3-5-sonnet", "mock-echo"} <= ids


@pytest.mark.django_db
def test_it_rejects_unknown_key(catalog):
    response = APIClient().get("/api/ai/models", HTTP_X_API_KEY="dm_alice_prod_" + "x" * 40)
    assert response.status_code == 401
    body = response.json()
    assert body["error"]["code"] == "invalid_api_key"
    assert body["detail"]
