"""Shared fixtures. Named people as in healthchecks: Alice's org owns things, Charlie's is the outsider.

`gateway_url` serves the real ASGI application over real HTTP on loopback (uvicorn in a thread, so
it shares this process's local-memory state); tests that use it need committed data
(`transactional_db`), because the server reads through its own database connections.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from django.utils import timezone

from catalog.selectors import catalog_cache
from core.shared_state import shared_state
from orgs.selectors import key_cache


# When the current test started: ledger rows from requests before it belong to another test.
TEST_CLOCK: dict = {}


@pytest.fixture(autouse=True)
def _fresh_shared_state():
    from ai_proxy import metering as proxy_metering
    from billing import metering

    # The live server meters a request just after answering it: let the previous test's last
    # rows reach the buffer before it is emptied, so they cannot land in this test's database.
    deadline = time.monotonic() + 5
    while proxy_metering._pending and time.monotonic() < deadline:
        time.sleep(0.01)
    from orgs import selectors

    shared_state().clear_sync()
    metering._buffer.clear()
    selectors._last_used_written.clear()  # key ids are reused across tests on SQLite
    TEST_CLOCK["started_at"] = timezone.now()
    key_cache.clear()
    catalog_cache.clear()
    yield
    key_cache.clear()
    catalog_cache.clear()


@pytest.fixture
def catalog(db):
    from catalog.seed import catalog_seed

    catalog_seed()


@pytest.fixture
def alice_org(db):
    from orgs.services import organization_create

    return organization_create(slug="alice", name="Alice's App", domains=["api.alice.test"], actor="test")


@pytest.fixture
def charlie_org(db):
    from orgs.services import organization_create

    return organization_create(slug="charlie", name="Charlie's App", actor="test")


@pytest.fixture
def alice_key(alice_org):
    from orgs.services import api_key_issue

    return api_key_issue(organization=alice_org, label="alice server", actor="test").plaintext


@pytest.fixture
def charlie_key(charlie_org):
    from orgs.services import api_key_issue

    return api_key_issue(organization=charlie_org, label="charlie server", actor="test").plaintext


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="session")
def gateway_url(django_db_setup, django_db_blocker):
    import uvicorn

    from gateway_site.asgi import application

    sock = _free_socket()
    # lifespan on: the session ends with the same graceful shutdown production has (metering
    # drained, ledger flushed, upstream connections closed).
    # proxy_headers off: like granian in production, the server passes the peer address as it is
    # (the gateway itself decides whether to believe X-Forwarded-For).
    config = uvicorn.Config(application, lifespan="on", log_level="warning", timeout_graceful_shutdown=1,
                            proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test gateway server did not start")
        time.sleep(0.01)
    host, port = sock.getsockname()
    yield f"http://{host}:{port}"
    # Its graceful shutdown writes the last ledger rows, so it may use the database once more.
    with django_db_blocker.unblock():
        server.should_exit = True
        thread.join(timeout=5)
        # The server's worker threads keep their database connections; PostgreSQL will not drop
        # the test database while they are open.
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


from tests.fake_fixtures import fake_provider, fake_provider_session  # noqa: E402,F401
from tests.proxy_helpers import gateway  # noqa: E402,F401  (the live server, the fake and SDK clients)

# Fixtures shared by several modules (the ledger buffer, the operator's console, `serve` as a subprocess).
pytest_plugins = ["tests.fixtures"]


def pytest_sessionfinish(session, exitstatus):
    """SQLite's WAL side files outlive the test database pytest-django drops: remove ours."""
    from pathlib import Path

    from django.conf import settings

    import shutil

    shutil.rmtree(settings.BILLING_JOURNAL_DIR, ignore_errors=True)
    name = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if name:
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{name}{suffix}").unlink(missing_ok=True)
