"""Fixtures shared across test modules, loaded for every module by conftest.py (a plugin, so no
test module imports another's fixtures). Plain helpers are in tests/helpers.py."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from tests.fake_fixtures import point_catalog_at
from tests.helpers import stop_background_flushers
from tests.server_helpers import process_env, process_stop, serve_start


@pytest.fixture
def empty_ledger_buffer():
    """Rows a previous test left buffered must not land in this test's database. Modules that
    write the ledger directly ask for it: `pytest.mark.usefixtures("empty_ledger_buffer")`."""
    from billing import metering

    stop_background_flushers()
    metering._buffer.clear()
    yield
    metering._buffer.clear()
    metering.ledger_connections_close()


@pytest.fixture
def alice(django_user_model):
    """The operator: a staff superuser."""
    return django_user_model.objects.create_superuser("alice", "alice@example.com", "correct horse battery")


@pytest.fixture
def console(alice) -> Client:
    """The admin console, logged in as the operator."""
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def served(fake_provider, monkeypatch, alice_key):
    """`manage.py serve` (granian) as a subprocess on the test database, its catalog pointed at
    the fake provider: (url, process, Alice's key, the fake)."""
    point_catalog_at(fake_provider.url, monkeypatch)
    url, proc = serve_start(process_env(REDIS_URL=settings.REDIS_URL))
    yield url, proc, alice_key, fake_provider
    process_stop(proc)
