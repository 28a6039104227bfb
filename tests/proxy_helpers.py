"""Shared set-up for tests that drive the real gateway over HTTP with the official SDKs."""

from __future__ import annotations

import time
from dataclasses import dataclass

import anthropic
import openai
import pytest

from tests.fake_fixtures import point_catalog_at
from tests.fake_provider import FakeProvider


@dataclass
class Gateway:
    url: str
    key: str
    fake: FakeProvider

    def openai(self, **kwargs) -> openai.OpenAI:
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=f"{self.url}/api/ai", api_key=kwargs.pop("api_key", self.key), **kwargs)

    def anthropic(self, **kwargs) -> anthropic.Anthropic:
        kwargs.setdefault("max_retries", 0)
        return anthropic.Anthropic(
            base_url=f"{self.url}/api/ai/anthropic", api_key=kwargs.pop("api_key", self.key), **kwargs
        )


@pytest.fixture
def gateway(transactional_db, gateway_url, fake_provider, monkeypatch, alice_key):
    point_catalog_at(fake_provider.url, monkeypatch)
    yield Gateway(url=gateway_url, key=alice_key, fake=fake_provider)
    # Let the server finish metering and writing this test's rows before the database is
    # emptied: on PostgreSQL an INSERT racing the TRUNCATE can deadlock.
    from ai_proxy import metering as proxy_metering
    from billing.metering import ledger_flush_sync

    deadline = time.monotonic() + 5
    while proxy_metering._pending and time.monotonic() < deadline:
        time.sleep(0.01)
    ledger_flush_sync()  # takes the write lock: also waits out a batch already being written


def add_route(model_id: str, provider_name: str, *, base_url: str, kind: str = "openai", upstream_model: str,
              priority: int = 0, weight: int = 100, timeout: float | None = None, api_key_env: str = "OPENAI_API_KEY"):
    """A second provider and route for failover tests."""
    from catalog.models import CatalogModel, Provider, Route

    provider, _ = Provider.objects.update_or_create(
        name=provider_name,
        defaults={"kind": kind, "base_url": base_url, "api_key_env": api_key_env,
                  **({"timeout_seconds": timeout} if timeout else {})},
    )
    return Route.objects.create(
        model=CatalogModel.objects.get(public_id=model_id), provider=provider,
        upstream_model=upstream_model, priority=priority, weight=weight,
    )


def set_route(model_id: str, **fields) -> None:
    from catalog.models import Route

    for route in Route.objects.filter(model__public_id=model_id):
        for name, value in fields.items():
            setattr(route, name, value)
        route.save()


def set_provider(name: str, **fields) -> None:
    from catalog.models import Provider

    provider = Provider.objects.get(name=name)
    for field_name, value in fields.items():
        setattr(provider, field_name, value)
    provider.save()


def set_budget(org, usd: str, *, mode: str = "hard", period: str = "month", key=None, thresholds: str | None = None):
    """Create or update the organization's (or `key`'s) budget for `period`, as an operator would."""
    from decimal import Decimal

    from billing.services import budget_set

    budget, _ = budget_set(organization=org, api_key=key, amount_usd=Decimal(usd), period=period, mode=mode,
                           thresholds=thresholds, actor="test")
    return budget
