"""Fixtures for the fake provider. conftest.py imports them:

    from tests.fake_fixtures import fake_provider, fake_provider_session  # noqa: F401

`fake_provider` is one server for the whole session (cheap to share: it is cleared before each
test). Tests that send requests through the gateway also call `point_catalog_at` so the seeded
providers route to it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fake_provider import FakeProvider

# Provider name -> how its base URL is built from the fake's URL (openai kind appends /v1 itself).
FAKE_ROUTED_PROVIDERS = {"openai": "/v1", "xai": "/v1", "perplexity": "/v1", "anthropic": ""}


@pytest.fixture(scope="session")
def fake_provider_session() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_provider(fake_provider_session: FakeProvider) -> Iterator[FakeProvider]:
    fake_provider_session.clear()
    yield fake_provider_session
    # Also releases any response a test left hanging, so the next test starts clean.
    fake_provider_session.clear()


def point_catalog_at(fake_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Route the seeded openai, xai, perplexity and anthropic providers to the fake at `fake_url`.

    Call from a test with database access (`db` or `transactional_db`). Seeds the catalog first if
    needed (seeding is idempotent). Sets each provider's api_key_env variable to a dummy value via
    `monkeypatch`, so no real secret is needed and none leaks between tests.
    """
    from catalog.models import Provider
    from catalog.seed import catalog_seed

    catalog_seed()
    for provider in Provider.objects.filter(name__in=FAKE_ROUTED_PROVIDERS):
        provider.base_url = fake_url.rstrip("/") + FAKE_ROUTED_PROVIDERS[provider.name]
        provider.enabled = True
        # save(), not update(): the post_save signal is what drops the cached catalog snapshot.
        provider.save(update_fields=["base_url", "enabled", "updated_at"])
        if provider.api_key_env:
            monkeypatch.setenv(provider.api_key_env, f"fake-{provider.name}-key")
