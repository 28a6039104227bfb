"""API keys: format, storage (hash only), constant-time matching, and how the API refuses bad keys.

Alice's org owns the keys; Charlie's org is the outsider.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import timedelta

import openai
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.versioned_cache import VersionedCache
from orgs.keys import SECRET_LENGTH, key_generate, key_hash, key_matches, key_prefix_of
from orgs.models import ApiKey, AuditLog
from orgs.selectors import key_context_get_sync
from orgs.services import api_key_issue, api_key_revoke, api_key_rotate

KEY_FORMAT = re.compile(r"^dm_(?P<slug>[a-z0-9-]+)_(?P<env>prod|staging|dev)_(?P<secret>[A-Za-z0-9]{40})$")


def models_api(plaintext: str | None = None, header: str = "authorization"):
    client = APIClient()
    if plaintext is None:
        return client.get("/api/ai/models")
    if header == "x-api-key":
        return client.get("/api/ai/models", HTTP_X_API_KEY=plaintext)
    return client.get("/api/ai/models", HTTP_AUTHORIZATION=f"Bearer {plaintext}")


def assert_refused(response, detail: str | None = None) -> None:
    assert response.status_code == 401
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["error"]["message"] == body["detail"]
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "invalid_api_key"
    assert response["x-request-id"].startswith("req_")
    if detail is not None:
        assert body["detail"] == detail


# --- format and storage -------------------------------------------------------------------


def test_it_generates_keys_in_the_documented_format():
    new = key_generate("re-resume", "staging")

    match = KEY_FORMAT.match(new.plaintext)
    assert match and match["slug"] == "re-resume" and match["env"] == "staging"
    assert new.prefix == new.plaintext[: len("dm_re-resume_staging_") + 8]
    assert new.last_four == new.plaintext[-4:]
    assert new.key_hash == hashlib.sha256(new.plaintext.encode()).hexdigest()


def test_it_puts_at_least_160_bits_of_randomness_in_a_key():
    assert SECRET_LENGTH * math.log2(62) >= 160
    secrets = [KEY_FORMAT.match(key_generate("alice", "prod").plaintext)["secret"] for _ in range(500)]
    assert len(set(secrets)) == 500
    # All 62 symbols turn up: the secret really is base62, not hex or a smaller alphabet.
    assert len(set("".join(secrets))) == 62


def test_it_stores_only_the_hash(alice_org):
    issued = api_key_issue(organization=alice_org, label="alice server", actor="test")

    key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert key.key_hash == key_hash(issued.plaintext)
    assert issued.plaintext.startswith(key.prefix) and issued.plaintext.endswith(key.last_four)
    for model in (ApiKey, AuditLog):
        for row in model.objects.values():
            assert not any(issued.plaintext in str(value) for value in row.values())


def test_it_looks_keys_up_by_hash(alice_key, charlie_key):
    ctx = key_context_get_sync(alice_key)

    assert ctx is not None and ctx.organization_slug == "alice"
    assert ctx.prefix == key_prefix_of(alice_key)
    assert key_context_get_sync(charlie_key).organization_slug == "charlie"
    # Right prefix, wrong secret: the prefix finds the row, the hash refuses it.
    assert key_context_get_sync(alice_key[:-1] + ("A" if alice_key[-1] != "A" else "B")) is None


def test_it_matches_keys_in_constant_time_by_behaviour(alice_key):
    stored = key_hash(alice_key)
    one_off = alice_key[:-1] + ("x" if alice_key[-1] != "x" else "y")

    assert key_matches(alice_key, stored) is True
    assert key_matches(one_off, stored) is False
    assert key_matches(alice_key[:-1], stored) is False
    assert key_matches(alice_key, stored.upper()) is False


# --- refusals over the API ----------------------------------------------------------------


def test_it_accepts_both_auth_headers(alice_key, catalog):
    assert models_api(alice_key).status_code == 200
    assert models_api(alice_key, header="x-api-key").status_code == 200


@pytest.mark.parametrize(
    "presented",
    [
        "sk-proj-not-ours",
        "dm_alice_prod_short",
        "dm_alice_prod_" + "A" * 39 + "!",
        "dm_alice_prod_" + "A" * 40,  # well formed, never issued
        "dm_" + "a" * 300,
    ],
    ids=["foreign", "short", "bad-char", "unknown", "long"],
)
def test_it_refuses_wrong_keys_with_the_openai_body(alice_key, presented):
    assert_refused(models_api(presented), "Invalid API key. Check the key you were issued (dm_...).")
    assert_refused(models_api(presented, header="x-api-key"))


def test_it_refuses_a_missing_key(db):
    assert_refused(models_api())


def test_it_refuses_a_revoked_key(alice_org, django_capture_on_commit_callbacks):
    issued = api_key_issue(organization=alice_org, actor="test")
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=issued.api_key, actor="test")

    assert_refused(models_api(issued.plaintext), "This API key has been revoked.")


def test_it_refuses_an_expired_key(alice_org):
    issued = api_key_issue(organization=alice_org, expires_at=timezone.now() - timedelta(seconds=1), actor="test")

    assert_refused(models_api(issued.plaintext), "This API key has expired.")


def test_it_refuses_keys_of_a_disabled_organization(alice_org, alice_key, charlie_key,
                                                    django_capture_on_commit_callbacks):
    assert models_api(alice_key).status_code == 200
    alice_org.is_active = False
    with django_capture_on_commit_callbacks(execute=True):
        alice_org.save(update_fields=["is_active"])

    assert_refused(models_api(alice_key), "This API key's organization is disabled.")
    assert models_api(charlie_key).status_code == 200


def test_it_stops_a_rotated_key_after_its_grace(alice_org, alice_key, django_capture_on_commit_callbacks):
    old = ApiKey.objects.get(organization=alice_org)
    with django_capture_on_commit_callbacks(execute=True):
        issued = api_key_rotate(api_key=old, grace=timedelta(hours=1), actor="test")
    assert models_api(alice_key).status_code == 200
    assert models_api(issued.plaintext).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        fresh = api_key_rotate(api_key=issued.api_key, grace=timedelta(0), actor="test")

    assert_refused(models_api(issued.plaintext), "This API key has expired.")
    assert models_api(fresh.plaintext).status_code == 200


# --- revocation reaches every cache at once -----------------------------------------------


def test_it_makes_revocation_visible_immediately(transactional_db, alice_org, settings):
    # However long instances trust their cache, a revocation drops it on commit.
    settings.GATEWAY_CACHE_CHECK_SECONDS = 3600
    issued = api_key_issue(organization=alice_org, actor="test")
    assert models_api(issued.plaintext).status_code == 200
    assert models_api(issued.plaintext).status_code == 200  # served from the cache

    api_key_revoke(api_key=issued.api_key, actor="test")

    assert_refused(models_api(issued.plaintext), "This API key has been revoked.")


def test_it_tells_other_instances_to_drop_their_cached_keys(transactional_db, alice_org):
    issued = api_key_issue(organization=alice_org, actor="test")
    # Another gateway process: its own in-memory entries, the same shared version counter.
    other = VersionedCache("keys")
    other.refresh_sync()
    other.set(key_hash(issued.plaintext), "cached context")

    api_key_revoke(api_key=issued.api_key, actor="test")
    other.refresh_sync()  # what it does at most once every GATEWAY_CACHE_CHECK_SECONDS

    assert other.get(key_hash(issued.plaintext)) is None


# --- the official SDK against the live server ---------------------------------------------


def test_it_raises_authentication_error_in_the_openai_sdk(transactional_db, catalog, alice_key, gateway_url):
    bad = openai.OpenAI(api_key="dm_alice_prod_" + "Z" * 40, base_url=f"{gateway_url}/api/ai", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as caught:
        bad.models.list()

    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert caught.value.body["message"].startswith("Invalid API key")
    good = openai.OpenAI(api_key=alice_key, base_url=f"{gateway_url}/api/ai", max_retries=0)
    assert "mock-echo" in [m.id for m in good.models.list()]


# --- another org's slug, last use, logs ---------------------------------------------------


def test_it_refuses_a_key_presented_under_another_orgs_slug(alice_key, charlie_org, charlie_key, catalog):
    match = KEY_FORMAT.match(alice_key)
    # Alice's real secret, relabelled as Charlie's: the slug is part of what was hashed.
    forged = f"dm_charlie_{match['env']}_{match['secret']}"

    assert_refused(models_api(forged), "Invalid API key. Check the key you were issued (dm_...).")
    assert_refused(models_api(forged, header="x-api-key"))
    assert models_api(alice_key).status_code == 200
    assert models_api(charlie_key).status_code == 200


def test_it_records_last_use_once_not_on_every_request(alice_org, catalog, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orgs import selectors

    # Key ids can repeat across tests (rolled-back SQLite rows): forget earlier tests' writes.
    monkeypatch.setattr(selectors, "_last_used_written", {})
    issued = api_key_issue(organization=alice_org, actor="test")
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at is None

    def last_use_updates(queries) -> list[str]:
        return [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and "last_used_at" in q["sql"]]

    before = timezone.now()
    with CaptureQueriesContext(connection) as first:
        assert models_api(issued.plaintext).status_code == 200
    used_at = ApiKey.objects.get(pk=issued.api_key.pk).last_used_at
    assert used_at is not None and before <= used_at <= timezone.now()
    assert len(last_use_updates(first.captured_queries)) == 1

    with CaptureQueriesContext(connection) as second:
        assert models_api(issued.plaintext).status_code == 200
        assert models_api(issued.plaintext, header="x-api-key").status_code == 200

    assert last_use_updates(second.captured_queries) == []
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at == used_at


def test_it_never_writes_the_plaintext_to_a_log(alice_org, catalog, caplog, settings,
                                               django_capture_on_commit_callbacks):
    import logging
    from io import StringIO

    from django.core.management import call_command

    # DEBUG on: Django then logs every SQL query with its parameters to django.db.backends.
    settings.DEBUG = True
    # Everything at DEBUG, including loggers configured quieter ("django" is INFO by default).
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("issue_key", "alice", "--label", "cli key", stdout=out, stderr=StringIO())
        from_service = api_key_issue(organization=alice_org, label="service key", actor="test")
    from_command = out.getvalue().strip().splitlines()[-1]
    assert KEY_FORMAT.match(from_command)

    for plaintext in (from_command, from_service.plaintext):
        assert models_api(plaintext).status_code == 200
        assert models_api(plaintext, header="x-api-key").status_code == 200
        with django_capture_on_commit_callbacks(execute=True):
            api_key_revoke(api_key=ApiKey.objects.get(key_hash=key_hash(plaintext)), actor="test")
        assert models_api(plaintext).status_code == 401

    # The capture really saw the key's traffic (queries by prefix), so silence would not pass.
    logged = [f"{r.getMessage()} {r.args!r} {getattr(r, 'sql', '')} {getattr(r, 'params', '')!r}"
              for r in caplog.records]
    assert any(from_service.api_key.prefix in line for line in logged)
    for plaintext in (from_command, from_service.plaintext):
        assert not [line for line in logged if plaintext in line]
        assert plaintext not in caplog.text
