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


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/ai/models", "/api/ai/models/gpt-4o", "/api/ai/usage", "/api/ai/health"])
def test_every_api_response_carries_request_ids(catalog, alice_key, path):
    response = APIClient().get(path, HTTP_AUTHORIZATION=f"Bearer {alice_key}")
    assert response.status_code == 200
    assert response["x-request-id"].startswith("req_") and response["request-id"] == response["x-request-id"]


@pytest.mark.django_db
def test_an_error_carries_the_same_request_id_in_header_and_body(catalog):
    response = APIClient().get("/api/ai/models", HTTP_X_API_KEY="dm_alice_prod_" + "y" * 40)
    assert response.status_code == 401
    assert response.json()["request_id"] == response["x-request-id"]
