"""Management commands: what an operator types on a fresh machine and in an incident."""

from __future__ import annotations

import re
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from catalog.models import CatalogModel, ModelAlias, Provider, Route
from orgs.keys import key_hash
from orgs.models import ApiKey, AuditLog, Organization, VanityDomain

PLAINTEXT = re.compile(r"dm_[a-z0-9-]+_(?:prod|staging|dev)_[A-Za-z0-9]{40}")


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def models_api(plaintext: str):
    return APIClient().get("/api/ai/models", HTTP_AUTHORIZATION=f"Bearer {plaintext}")


def catalog_counts() -> tuple[int, ...]:
    return tuple(m.objects.count() for m in (Provider, CatalogModel, ModelAlias, Route))


# --- create_org ---------------------------------------------------------------------------


def test_it_creates_an_org(db):
    out = run("create_org", "reresume", "--name", "ReResume", "--domain", "API.ReResume.test",
              "--domain", "api.reresume.app", "--monthly-budget", "250.00")

    assert out.strip() == "Created organization reresume (ReResume)."
    org = Organization.objects.get(slug="reresume")
    [budget] = org.budgets.all()  # a hard calendar-month budget (was Organization.monthly_budget_usd)
    assert (budget.amount_usd, budget.period, budget.mode, budget.api_key) == (Decimal("250.00"), "month", "hard", None)
    assert sorted(d.hostname for d in org.domains.all()) == ["api.reresume.app", "api.reresume.test"]
    audit = AuditLog.objects.get(action="create", organization=org)
    assert audit.actor_label == "cli"


@pytest.mark.parametrize(
    "args, message",
    [
        (["alice", "--name", "Again"], "Organization alice already exists."),
        (["bad_slug", "--name", "X"], "slug: Use 1-40 lowercase letters"),
        (["newco", "--name", "X", "--monthly-budget", "lots"], "--monthly-budget must be an amount in USD, got 'lots'"),
        (["newco", "--name", "X", "--monthly-budget", "-5"], "--monthly-budget cannot be negative"),
        (["newco", "--name", "X", "--domain", "api.alice.test"], "hostname: Vanity domain with this Hostname already exists."),
    ],
    ids=["duplicate", "slug", "budget", "negative", "taken-domain"],
)
def test_it_refuses_bad_orgs_with_a_clear_message(alice_org, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("create_org", *args)
    assert not Organization.objects.filter(slug="newco").exists()
    assert VanityDomain.objects.count() == 1


def test_it_creates_an_org_with_rate_limits(db):
    run("create_org", "limited", "--name", "Limited", "--rpm", "600", "--tpm", "90000")

    org = Organization.objects.get(slug="limited")
    assert (org.rpm_limit, org.tpm_limit) == (600, 90000)
    assert not org.budgets.exists()
    assert AuditLog.objects.get(action="create", organization=org).changes["rpm_limit"] == 600


def test_it_refuses_a_zero_rate_limit(db):
    with pytest.raises(CommandError, match="--rpm must be at least 1"):
        run("create_org", "limited", "--name", "Limited", "--rpm", "0")


# --- set_budget ----------------------------------------------------------------------------


def test_it_sets_and_updates_an_organization_budget(alice_org):
    out = run("set_budget", "alice", "--amount", "100", "--period", "week", "--mode", "soft",
              "--thresholds", "25,50,100")
    assert out.strip() == "Created the week budget of organization alice: $100.00 (soft; alerts at 25,50,100%)."
    out = run("set_budget", "alice", "--amount", "150.50", "--period", "week")
    assert out.strip() == "Updated the week budget of organization alice: $150.50 (soft; alerts at 25,50,100%)."

    [budget] = alice_org.budgets.all()
    assert (budget.api_key, budget.period, budget.amount_usd, budget.mode) == (None, "week", Decimal("150.50"), "soft")
    created, updated = AuditLog.objects.filter(action="set_budget").order_by("id")
    assert created.actor_label == "cli" and created.changes["amount_usd"] == "100.00"
    assert updated.changes == {"period": "week", "amount_usd": {"old": "100.00", "new": "150.50"}}


def test_it_sets_a_key_budget_beside_the_organizations(alice_org, alice_key):
    prefix = ApiKey.objects.get(organization=alice_org).prefix
    run("set_budget", "alice", "--amount", "10")
    out = run("set_budget", "alice", "--key", prefix, "--amount", "2.50", "--period", "day")

    assert out.strip() == f"Created the day budget of key {prefix}: $2.50 (hard; alerts at 50,80,100%)."
    assert sorted((b.scope, b.period, b.amount_usd) for b in alice_org.budgets.all()) == [
        ("key", "day", Decimal("2.50")), ("organization", "month", Decimal("10.00"))]


@pytest.mark.parametrize(
    "args, message",
    [
        (["nobody", "--amount", "5"], "No organization 'nobody'."),
        (["alice", "--key", "dm_alice_prod_nothere", "--amount", "5"], "has no key with prefix 'dm_alice_prod_nothere'"),
        (["alice", "--key", "CHARLIE", "--amount", "5"], "has no key with prefix"),
        (["alice", "--amount", "lots"], "--amount must be an amount in USD, got 'lots'"),
        (["alice", "--amount", "-1"], "--amount must be a non-negative amount in USD"),
        (["alice", "--amount", "1.005"], "amount_usd: Ensure that there are no more than 2 decimal places."),
        (["alice", "--amount", "5", "--thresholds", "50,eighty"], "--thresholds must be whole percentages"),
        (["alice", "--amount", "5", "--thresholds", "0,50"], "thresholds: Each threshold is a percentage between 1 and 1000."),
    ],
    ids=["org", "key", "other-orgs-key", "amount", "negative", "cents", "thresholds", "zero-threshold"],
)
def test_it_refuses_bad_budgets_with_a_clear_message(alice_org, charlie_key, args, message):
    charlie_prefix = ApiKey.objects.exclude(organization=alice_org).get().prefix
    args = [charlie_prefix if a == "CHARLIE" else a for a in args]
    with pytest.raises(CommandError, match=re.escape(message)):
        run("set_budget", *args)
    assert not alice_org.budgets.exists()


# --- issue_key and revoke_key -------------------------------------------------------------


def test_it_issues_a_key_whose_plaintext_is_the_last_line(catalog, alice_org):
    out = run("issue_key", "alice", "--env", "staging", "--label", "worker", "--models", "mock-echo,gpt-4o",
              "--rpm", "30", "--tpm", "5000")

    plaintext = out.strip().splitlines()[-1]
    assert PLAINTEXT.fullmatch(plaintext) and plaintext.startswith("dm_alice_staging_")
    key = ApiKey.objects.get(key_hash=key_hash(plaintext))
    assert (key.label, key.rpm_limit, key.tpm_limit) == ("worker", 30, 5000)
    assert key.prefix in out.splitlines()[0]
    response = models_api(plaintext)
    assert response.status_code == 200
    assert sorted(m["id"] for m in response.json()["data"]) == ["gpt-4o", "mock-echo"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["nobody"], "No organization nobody. Create it with create_org first."),
        (["alice", "--models", "mock-echo,gpt-7"], "Unknown model(s): gpt-7"),
        (["alice", "--rpm", "0"], "--rpm must be a positive integer"),
        (["alice", "--tpm", "-1"], "--tpm must be a positive integer"),
    ],
    ids=["org", "model", "rpm", "tpm"],
)
def test_it_refuses_bad_key_requests_with_a_clear_message(catalog, alice_org, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("issue_key", *args)
    assert not ApiKey.objects.exists()


def test_it_refuses_models_outside_the_orgs_allowlist(catalog, alice_org):
    alice_org.allowed_models.set([CatalogModel.objects.get(public_id="mock-echo")])

    with pytest.raises(CommandError, match="models not allowed for organization alice: gpt-4o"):
        run("issue_key", "alice", "--models", "gpt-4o")


def test_it_revokes_a_key_by_prefix(alice_org, alice_key, django_capture_on_commit_callbacks):
    key = ApiKey.objects.get(organization=alice_org)
    assert models_api(alice_key).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        out = run("revoke_key", f"{key.prefix}…")

    assert out.strip() == f"Revoked {key.prefix}."
    assert models_api(alice_key).status_code == 401
    assert AuditLog.objects.get(action="revoke_key").actor_label == "cli"
    assert run("revoke_key", key.prefix).strip() == f"{key.prefix} was already revoked."


def test_it_refuses_to_revoke_an_unknown_prefix(db):
    with pytest.raises(CommandError, match=re.escape("No key with prefix dm_alice_prod_nothere0.")):
        run("revoke_key", "dm_alice_prod_nothere0")


# --- set_provider -------------------------------------------------------------------------


def test_it_creates_and_updates_a_provider(db, monkeypatch):
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    out = run("set_provider", "groq", "--kind", "openai", "--base-url", "https://api.groq.com/openai/v1",
              "--api-key-env", "GROQ_API_KEY", "--timeout", "90")

    assert "Provider groq created" in out and "secret GROQ_API_KEY is NOT set" in out
    provider = Provider.objects.get(name="groq")
    assert (provider.kind, provider.timeout_seconds, provider.enabled) == ("openai", 90.0, True)

    monkeypatch.setenv("GROQ_API_KEY", "gsk-secret-value")
    out = run("set_provider", "groq", "--disable")

    assert "Provider groq updated" in out and "disabled" in out and "secret GROQ_API_KEY is set" in out
    assert "gsk-secret-value" not in out
    provider.refresh_from_db()
    assert provider.enabled is False and provider.base_url == "https://api.groq.com/openai/v1"
    assert [a.action for a in AuditLog.objects.filter(object_type="catalog.Provider").order_by("id")] == [
        "create", "change"]
    assert AuditLog.objects.filter(action="change").get().changes == {"enabled": False}

    run("set_provider", "groq", "--enable")
    provider.refresh_from_db()
    assert provider.enabled is True


@pytest.mark.parametrize(
    "args, message",
    [
        (["groq"], "Provider groq does not exist yet: --kind is required to create it."),
        (["groq", "--kind", "openai"], "--base-url is required for openai and anthropic providers."),
        (["groq", "--kind", "openai", "--base-url", "not a url"], "base_url: Enter a valid URL."),
        (["groq", "--kind", "openai", "--base-url", "https://x.test", "--api-key-env", "lower"],
         "api_key_env: An environment variable name."),
        (["Groq", "--kind", "mock"], "name: Lowercase name."),
    ],
    ids=["no-kind", "no-url", "bad-url", "bad-env", "bad-name"],
)
def test_it_refuses_bad_providers_with_a_clear_message(db, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("set_provider", *args)
    assert not Provider.objects.exists()


# --- seed_catalog and quickstart ----------------------------------------------------------


def test_it_seeds_the_catalog_idempotently(db):
    first = run("seed_catalog")
    counts = catalog_counts()
    assert all(counts)
    assert "created 5 providers" in first

    CatalogModel.objects.filter(public_id="gpt-4o").update(input_price_per_mtok=Decimal("9.99"))
    second = run("seed_catalog")

    assert catalog_counts() == counts
    assert second.strip() == "Catalog seeded: created 0 providers, 0 models, 0 aliases, 0 routes."
    # Seeding never overwrites what an operator changed.
    assert CatalogModel.objects.get(public_id="gpt-4o").input_price_per_mtok == Decimal("9.99")


def test_it_runs_quickstart_once_and_then_shows_no_key(db, settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "static"  # collectstatic must not write into the real var/

    first = run("quickstart")

    keys = PLAINTEXT.findall(first)
    assert len(keys) == 1 and keys[0].startswith("dm_demo_dev_")
    assert "admin login:" in first
    assert get_user_model().objects.filter(username="admin", is_superuser=True).exists()
    assert models_api(keys[0]).status_code == 200
    counts = (catalog_counts(), ApiKey.objects.count(), Organization.objects.count())

    second = run("quickstart")

    assert not PLAINTEXT.search(second)
    assert "password" not in second
    assert "Already set up" in second
    assert "manage.py issue_key demo --env dev" in second
    assert (catalog_counts(), ApiKey.objects.count(), Organization.objects.count()) == counts


# --- serve --------------------------------------------------------------------------------


class Exec:
    """Stands in for os.execv (the OS call), so the command is checked without starting a server."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, path: str, argv: list[str]) -> None:
        self.calls.append((path, list(argv)))


def option(argv: list[str], name: str) -> str:
    assert argv.count(name) == 1, argv
    return argv[argv.index(name) + 1]


@pytest.fixture
def execv(monkeypatch) -> Exec:
    import os

    fake = Exec()
    monkeypatch.setattr(os, "execv", fake)
    return fake


def test_it_serves_with_granian_and_one_worker_without_redis(execv, settings):
    import sys

    settings.REDIS_URL = ""

    out = run("serve", "--port", "19123")

    [(path, argv)] = execv.calls
    assert path == sys.executable
    assert argv[:3] == [sys.executable, "-m", "gateway_site.granian_main"]  # granian's CLI, with the ready grace
    assert option(argv, "--interface") == "asgi"
    assert option(argv, "--host") == "127.0.0.1"
    assert option(argv, "--port") == "19123"
    assert option(argv, "--workers") == "1"
    assert option(argv, "--loop") == "uvloop"
    assert int(option(argv, "--backpressure")) >= 1024
    assert argv[-1] == "gateway_site.asgi:application"
    assert out.strip() == "Serving on http://127.0.0.1:19123 with 1 worker(s) (granian)"


def test_it_serves_on_the_documented_defaults(execv, settings):
    settings.REDIS_URL = ""

    run("serve")

    [(_, argv)] = execv.calls
    assert (option(argv, "--host"), option(argv, "--port"), option(argv, "--workers")) == ("127.0.0.1", "19000", "1")


def test_it_refuses_several_workers_without_redis(execv, settings):
    settings.REDIS_URL = ""

    with pytest.raises(CommandError, match="REDIS_URL"):
        run("serve", "--workers", "2")

    assert execv.calls == []


def test_it_serves_several_workers_with_redis(execv, settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"

    out = run("serve", "--workers", "2", "--host", "0.0.0.0")

    [(_, argv)] = execv.calls
    assert option(argv, "--workers") == "2"
    assert option(argv, "--host") == "0.0.0.0"
    assert "with 2 worker(s)" in out
