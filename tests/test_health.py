"""GET /api/ai/health: liveness plus database, cache and provider-secret status."""

from __future__ import annotations

import httpx
import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_reports_database_cache_and_providers(catalog, gateway_url, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    response = httpx.get(f"{gateway_url}/api/ai/health")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok" and body["cache"] == "ok" and body["status"] == "healthy"
    assert body["providers"]["mock"] == "ok"
    assert body["providers"]["openai"] == "missing secret: set OPENAI_API_KEY"
    assert body["timestamp"].endswith("+00:00")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs a PostgreSQL server to drop connections")
def test_it_recovers_when_postgres_drops_the_gateways_connections(catalog, gateway_url):
    assert httpx.get(f"{gateway_url}/api/ai/health").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    response = httpx.get(f"{gateway_url}/api/ai/health")
    assert response.status_code == 200, response.text


def test_it_answers_503_when_the_database_is_down(catalog, monkeypatch):
    from django.db import OperationalError
    from django.db.backends.base.base import BaseDatabaseWrapper
    from rest_framework.test import APIClient

    assert APIClient().get("/api/ai/health").status_code == 200

    def unreachable(self):
        raise OperationalError("connection refused")

    # A stand-in for the database driver, not for our code: every cursor fails as on a dead server.
    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", unreachable)
    response = APIClient().get("/api/ai/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["database"].startswith("error")
    assert body["database"] == "error: OperationalError"
    assert body["cache"] == "ok"
    assert body["providers"] == {}
    assert body["timestamp"].endswith("+00:00")
