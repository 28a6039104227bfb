"""The operator console: every page renders for staff only, keys are issued/revoked/rotated through
it with the plaintext shown exactly once, and every operator edit leaves an audit row.

Alice is the operator (a staff superuser); Charlie is a logged-in user who is not staff.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import CatalogModel, ModelAlias, Provider
from orgs.keys import key_hash
from orgs.models import ApiKey, AuditLog, Organization, VanityDomain
from orgs.services import api_key_issue, api_key_revoke, api_key_rotate
from tests.helpers import form_data

PLAINTEXT = re.compile(r"dm_[a-z0-9-]+_(?:prod|staging|dev)_[A-Za-z0-9]{40}")
REGISTERED = sorted(admin.site._registry, key=lambda m: m._meta.label)


# --- helpers ------------------------------------------------------------------------------


def models_api(plaintext: str):
    return APIClient().get("/api/ai/models", HTTP_AUTHORIZATION=f"Bearer {plaintext}")


def column_values(model) -> list[str]:
    return [str(v) for row in model.objects.values() for v in row.values()]


@pytest.fixture
def charlie(django_user_model):
    return django_user_model.objects.create_user("charlie", "charlie@example.com", "charlie's password")


@pytest.fixture
def everything(catalog, alice_org, alice_key, charlie_org):
    """At least one row of every model we register, so every change form has something to show."""
    api_key_issue(organization=charlie_org, label="revoked later", actor="test")


def _changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


# --- every page renders, for staff only ---------------------------------------------------


@pytest.mark.parametrize("model", REGISTERED, ids=[m._meta.label for m in REGISTERED])
def test_it_renders_every_admin_page(console, alice, everything, model):
    info = f"{model._meta.app_label}_{model._meta.model_name}"
    model_admin = admin.site._registry[model]
    request = console.get("/admin/").wsgi_request

    assert console.get(reverse(f"admin:{info}_changelist")).status_code == 200
    assert console.get(reverse(f"admin:{info}_changelist"), {"q": "alice"}).status_code == 200
    if model_admin.has_add_permission(request):
        assert console.get(reverse(f"admin:{info}_add")).status_code == 200
    obj = model._default_manager.first()
    if obj is not None:
        assert console.get(reverse(f"admin:{info}_change", args=[obj.pk])).status_code == 200


def test_it_renders_the_index_and_key_filters(console, everything):
    assert console.get("/admin/").status_code == 200
    for status in ("active", "rotating", "expired", "revoked"):
        assert console.get(_changelist(ApiKey), {"status": status}).status_code == 200


@pytest.mark.parametrize("model", REGISTERED, ids=[m._meta.label for m in REGISTERED])
def test_it_sends_non_staff_to_the_login_page(charlie, model):
    client = Client()
    client.force_login(charlie)
    url = _changelist(model)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", ["/admin/", "/admin/orgs/apikey/", "/admin/orgs/apikey/add/", "/admin/orgs/auditlog/"])
def test_it_sends_anonymous_users_to_the_login_page(db, client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


def test_it_logs_in_through_the_real_login_form(alice):
    client = Client(enforce_csrf_checks=True)
    page = client.get("/admin/login/?next=/admin/orgs/organization/")
    assert page.status_code == 200
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/admin/login/?next=/admin/orgs/organization/",
        {"username": "alice", "password": "correct horse battery", "csrfmiddlewaretoken": token,
         "next": "/admin/orgs/organization/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/orgs/organization/"
    assert client.get("/admin/orgs/organization/").status_code == 200


def test_it_refuses_a_wrong_password_at_the_login_form(alice):
    client = Client()
    response = client.post("/admin/login/", {"username": "alice", "password": "wrong", "next": "/admin/"})
    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302


# --- issuing a key --------------------------------------------------------------------------


def _issue(console, org, **overrides):
    expires = timezone.now() + timedelta(days=30)
    data = {
        "organization": org.pk,
        "environment": "dev",
        "label": "web server",
        "models": [CatalogModel.objects.get(public_id="mock-echo").pk],
        "rpm_limit": "60",
        "tpm_limit": "10000",
        "expires_at_0": expires.strftime("%Y-%m-%d"),
        "expires_at_1": expires.strftime("%H:%M:%S"),
    }
    data.update(overrides)
    return console.post(reverse("admin:orgs_apikey_add"), data)


def test_it_issues_a_key_and_shows_the_plaintext_once(console, alice, catalog, alice_org):
    response = _issue(console, alice_org)

    assert response.status_code == 200
    content = response.content.decode()
    found = PLAINTEXT.findall(content)
    assert len(found) == 1
    plaintext = found[0]
    assert plaintext.startswith("dm_alice_dev_")
    assert "Copy" in content and "data-copy" in content
    assert "no-store" in response["Cache-Control"]

    key = ApiKey.objects.get(organization=alice_org, label="web server")
    assert key.key_hash == key_hash(plaintext)
    assert (key.environment, key.rpm_limit, key.tpm_limit) == ("dev", 60, 10000)
    assert [m.public_id for m in key.allowed_models.all()] == ["mock-echo"]
    assert key.expires_at > timezone.now() + timedelta(days=29)
    assert key.created_by == alice
    audit = AuditLog.objects.get(action="issue_key", object_id=str(key.pk))
    assert audit.actor == alice and audit.organization == alice_org
    assert audit.changes["models"] == ["mock-echo"]


def test_it_keeps_the_plaintext_nowhere_but_that_one_page(console, catalog, alice_org):
    response = _issue(console, alice_org)
    plaintext = PLAINTEXT.search(response.content.decode()).group()
    key = ApiKey.objects.get(label="web server")

    for model in (ApiKey, AuditLog):
        assert not any(plaintext in value for value in column_values(model))
    assert not any(plaintext in value for value in column_values(Session))
    assert not any(plaintext in str(s.get_decoded()) for s in Session.objects.all())
    assert not any(plaintext in morsel.value for morsel in response.cookies.values())
    for url in (
        reverse("admin:orgs_apikey_add"),
        _changelist(ApiKey),
        reverse("admin:orgs_apikey_change", args=[key.pk]),
        reverse("admin:orgs_organization_change", args=[alice_org.pk]),
        _changelist(AuditLog),
        reverse("admin:orgs_auditlog_change", args=[AuditLog.objects.get(action="issue_key").pk]),
        "/admin/",
    ):
        page = console.get(url)
        assert page.status_code == 200
        assert plaintext not in page.content.decode()
        assert not PLAINTEXT.search(page.content.decode())


def test_it_issues_a_key_that_authenticates(console, catalog, alice_org):
    plaintext = PLAINTEXT.search(_issue(console, alice_org).content.decode()).group()

    response = models_api(plaintext)

    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == ["mock-echo"]


def test_it_preselects_the_organization_from_its_page(console, catalog, alice_org):
    org_page = console.get(reverse("admin:orgs_organization_change", args=[alice_org.pk])).content.decode()
    link = f'{reverse("admin:orgs_apikey_add")}?organization={alice_org.pk}'
    assert link in org_page

    form = console.get(link).content.decode()

    assert f'<option value="{alice_org.pk}" selected>' in form


def test_it_validates_the_issue_form(console, catalog, alice_org):
    gpt = CatalogModel.objects.get(public_id="gpt-4o")
    alice_org.allowed_models.set([CatalogModel.objects.get(public_id="mock-echo")])

    response = _issue(console, alice_org, models=[gpt.pk], rpm_limit="0", expires_at_0="2001-01-01")

    content = response.content.decode()
    assert response.status_code == 200
    assert "Not allowed for alice: gpt-4o." in content
    assert "Ensure this value is greater than or equal to 1." in content
    assert "The expiry must be in the future." in content
    assert not PLAINTEXT.search(content)
    assert not ApiKey.objects.filter(organization=alice_org).exists()


def test_it_shows_hashes_and_prefixes_read_only(console, alice_org, alice_key):
    key = ApiKey.objects.get(organization=alice_org)
    url = reverse("admin:orgs_apikey_change", args=[key.pk])
    page = console.get(url).content.decode()
    assert key.prefix in page and key.key_hash in page
    data = form_data(page, "apikey_form")
    assert "key_hash" not in data and "prefix" not in data and "organization" not in data
    data.update({"key_hash": ["0" * 64], "prefix": ["dm_alice_prod_forged00"], "label": ["renamed"]})

    assert console.post(url, data).status_code == 302

    key.refresh_from_db()
    assert (key.label, key.prefix, key.key_hash) == ("renamed", ApiKey.objects.get(pk=key.pk).prefix, key_hash(alice_key))
    assert models_api(alice_key).status_code == 200
    assert AuditLog.objects.get(action="change", object_id=str(key.pk)).changes == {
        "label": {"old": "alice server", "new": "renamed"}
    }


# --- revoking and rotating ----------------------------------------------------------------


def _action(console, action: str, keys, **extra):
    data = {"action": action, "_selected_action": [k.pk for k in keys], **extra}
    return console.post(_changelist(ApiKey), data)


def test_it_revokes_keys_and_reports_a_count(console, alice, alice_org, alice_key, charlie_key,
                                             django_capture_on_commit_callbacks):
    assert models_api(alice_key).status_code == 200  # now cached
    keys = list(ApiKey.objects.all())

    with django_capture_on_commit_callbacks(execute=True):
        response = _action(console, "revoke_keys", keys)

    assert response.status_code == 302
    assert "Revoked 2 key(s)." in console.get(response["Location"]).content.decode()
    for plaintext in (alice_key, charlie_key):
        refused = models_api(plaintext)
        assert refused.status_code == 401
        assert refused.json()["detail"] == "This API key has been revoked."
    audit = AuditLog.objects.filter(action="revoke_key")
    assert audit.count() == 2
    assert {(a.actor, a.actor_label) for a in audit} == {(alice, "alice")}

    again = _action(console, "revoke_keys", keys[:1])
    assert "Revoked 0 key(s) (1 already revoked)." in console.get(again["Location"]).content.decode()


def test_it_rotates_a_key_with_a_grace_period(console, alice, alice_org, alice_key,
                                              django_capture_on_commit_callbacks):
    old = ApiKey.objects.get(organization=alice_org)
    assert models_api(alice_key).status_code == 200

    confirm = _action(console, "rotate_keys", [old])
    assert confirm.status_code == 200
    assert 'name="grace_hours"' in confirm.content.decode()
    assert not ApiKey.objects.filter(rotated_from=old).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = _action(console, "rotate_keys", [old], confirm="yes", grace_hours="2")

    content = response.content.decode()
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    new_plaintext = PLAINTEXT.findall(content)
    assert len(new_plaintext) == 1 and new_plaintext[0] != alice_key
    old.refresh_from_db()
    assert abs(old.expires_at - (timezone.now() + timedelta(hours=2))) < timedelta(minutes=1)
    assert f"keeps working until <strong>{old.expires_at:%Y-%m-%d %H:%M:%S} UTC</strong>" in content
    new = ApiKey.objects.get(rotated_from=old)
    assert (new.label, new.environment, new.key_hash) == (old.label, old.environment, key_hash(new_plaintext[0]))
    assert AuditLog.objects.get(action="rotate_key").actor == alice

    assert models_api(new_plaintext[0]).status_code == 200
    assert models_api(alice_key).status_code == 200  # within the grace period

    # The grace period ends: move the old key's end back by the grace length.
    old.expires_at -= timedelta(hours=2, seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        old.save(update_fields=["expires_at"])

    refused = models_api(alice_key)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "This API key has expired."
    assert models_api(new_plaintext[0]).status_code == 200


def test_it_rotates_with_no_grace_and_refuses_revoked_keys(console, alice_org, alice_key, charlie_org,
                                                           django_capture_on_commit_callbacks):
    alice_old = ApiKey.objects.get(organization=alice_org)
    revoked = api_key_issue(organization=charlie_org, label="gone", actor="test").api_key
    revoked.revoked_at = timezone.now()
    revoked.save(update_fields=["revoked_at"])

    with django_capture_on_commit_callbacks(execute=True):
        response = _action(console, "rotate_keys", [alice_old, revoked], confirm="yes", grace_hours="0")

    content = response.content.decode()
    assert "Rotated 1 key(s)" in content
    assert f"key {revoked.prefix} is revoked and cannot be rotated" in content
    assert len(PLAINTEXT.findall(content)) == 1
    assert models_api(alice_key).status_code == 401
    assert models_api(PLAINTEXT.search(content).group()).status_code == 200


def test_it_does_not_delete_keys(console, alice_org, alice_key):
    key = ApiKey.objects.get(organization=alice_org)
    assert console.post(reverse("admin:orgs_apikey_delete", args=[key.pk]), {"post": "yes"}).status_code == 403
    assert ApiKey.objects.filter(pk=key.pk).exists()


# --- audit of operator edits --------------------------------------------------------------


def test_it_audits_a_price_edit_with_old_and_new_prices(console, alice, catalog):
    model = CatalogModel.objects.get(public_id="gpt-4o")
    url = reverse("admin:catalog_catalogmodel_change", args=[model.pk])
    data = form_data(console.get(url).content.decode(), "catalogmodel_form")
    data["input_price_per_mtok"] = ["3.5"]

    response = console.post(url, data)

    assert response.status_code == 302
    model.refresh_from_db()
    assert model.input_price_per_mtok == Decimal("3.5")
    audit = AuditLog.objects.get(action="change", object_type="catalog.CatalogModel")
    assert audit.actor == alice and audit.actor_label == "alice"
    assert audit.object_id == str(model.pk)
    assert audit.changes == {"input_price_per_mtok": {"old": "2.500000", "new": "3.500000"}}


def test_it_audits_prices_edited_from_the_list(console, alice, catalog):
    page = console.get(_changelist(CatalogModel)).content.decode()
    data = form_data(page, "changelist-form")
    model = CatalogModel.objects.get(public_id="claude-3-haiku")
    index = next(k for k, v in data.items() if k.endswith("-id") and v == [str(model.pk)]).split("-")[1]
    data[f"form-{index}-output_price_per_mtok"] = ["1.5"]
    data["_save"] = ["Save"]

    response = console.post(_changelist(CatalogModel), data)

    assert response.status_code == 302
    audit = AuditLog.objects.get(action="change")
    assert audit.object_repr == "claude-3-haiku"
    assert audit.changes == {"output_price_per_mtok": {"old": "1.250000", "new": "1.500000"}}


def test_it_audits_inline_aliases_and_routes(console, alice, catalog):
    model = CatalogModel.objects.get(public_id="mock-echo")
    url = reverse("admin:catalog_catalogmodel_change", args=[model.pk])
    data = form_data(console.get(url).content.decode(), "catalogmodel_form")
    data.update({"aliases-TOTAL_FORMS": ["1"], "aliases-0-alias": ["echo"], "aliases-0-model": [str(model.pk)]})

    assert console.post(url, data).status_code == 302

    alias = ModelAlias.objects.get(alias="echo")
    audit = AuditLog.objects.get(object_type="catalog.ModelAlias")
    assert (audit.action, audit.object_id, audit.actor) == ("create", str(alias.pk), alice)
    assert audit.changes == {"alias": "echo"}
    assert not AuditLog.objects.filter(object_type="catalog.CatalogModel").exists()  # nothing else changed

    data = form_data(console.get(url).content.decode(), "catalogmodel_form")
    data["aliases-0-DELETE"] = ["on"]
    data["routes-0-weight"] = ["50"]
    assert console.post(url, data).status_code == 302
    assert AuditLog.objects.filter(object_type="catalog.ModelAlias", action="delete", object_id=str(alias.pk)).exists()
    assert AuditLog.objects.get(object_type="catalog.Route").changes == {"weight": {"old": 100, "new": 50}}


def test_it_audits_organizations_and_domains_created_in_the_console(console, alice, catalog):
    data = form_data(console.get(reverse("admin:orgs_organization_add")).content.decode(), "organization_form")
    data.update({
        "slug": ["blogcraft"], "name": ["BlogCraft"], "rpm_limit": ["600"],
        "domains-TOTAL_FORMS": ["1"], "domains-0-hostname": ["api.blogcraft.test"],
    })

    response = console.post(reverse("admin:orgs_organization_add"), data)

    assert response.status_code == 302
    org = Organization.objects.get(slug="blogcraft")
    created = AuditLog.objects.get(action="create", object_type="orgs.Organization")
    assert (created.organization, created.actor) == (org, alice)
    assert created.changes["rpm_limit"] == 600
    domain = AuditLog.objects.get(action="create", object_type="orgs.VanityDomain")
    assert domain.object_repr == "api.blogcraft.test" and domain.organization == org


def test_it_audits_disabling_an_organization(console, alice, alice_org, alice_key,
                                             django_capture_on_commit_callbacks):
    url = reverse("admin:orgs_organization_change", args=[alice_org.pk])
    data = form_data(console.get(url).content.decode(), "organization_form")
    assert "slug" not in data  # read-only once keys may carry it
    del data["is_active"]

    with django_capture_on_commit_callbacks(execute=True):
        assert console.post(url, data).status_code == 302

    audit = AuditLog.objects.get(action="change", object_type="orgs.Organization")
    assert audit.changes == {"is_active": {"old": True, "new": False}}
    assert models_api(alice_key).status_code == 401


def test_it_audits_deletes(console, alice, alice_org):
    domain = VanityDomain.objects.get(hostname="api.alice.test")
    url = reverse("admin:orgs_vanitydomain_delete", args=[domain.pk])

    assert console.post(url, {"post": "yes"}).status_code == 302

    audit = AuditLog.objects.get(action="delete")
    assert (audit.object_type, audit.object_id, audit.object_repr) == ("orgs.VanityDomain", str(domain.pk), "api.alice.test")
    assert audit.organization == alice_org and audit.actor == alice


def test_it_audits_provider_edits_and_shows_only_whether_the_secret_is_set(console, alice, catalog, monkeypatch):
    monkeypatch.setenv("XAI_API_KEY", "xai-very-secret-value")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    xai = Provider.objects.get(name="xai")
    openai_provider = Provider.objects.get(name="openai")

    page = console.get(reverse("admin:catalog_provider_change", args=[xai.pk])).content.decode()
    assert "XAI_API_KEY is set" in page
    assert "xai-very-secret-value" not in page
    assert "OPENAI_API_KEY is NOT set" in console.get(
        reverse("admin:catalog_provider_change", args=[openai_provider.pk])).content.decode()
    listing = console.get(_changelist(Provider)).content.decode()
    assert "xai-very-secret-value" not in listing and 'alt="False"' in listing and 'alt="True"' in listing

    url = reverse("admin:catalog_provider_change", args=[xai.pk])
    data = form_data(page, "provider_form")
    data["timeout_seconds"] = ["120"]
    del data["enabled"]
    assert console.post(url, data).status_code == 302
    assert AuditLog.objects.get(object_type="catalog.Provider").changes == {
        "timeout_seconds": {"old": 600.0, "new": 120.0},
        "enabled": {"old": True, "new": False},
    }


def test_it_keeps_the_audit_log_read_only(console, alice_org):
    entry = AuditLog.objects.first()
    assert console.get(reverse("admin:orgs_auditlog_add")).status_code == 403
    assert console.post(reverse("admin:orgs_auditlog_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    page = console.get(reverse("admin:orgs_auditlog_change", args=[entry.pk]))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    console.post(reverse("admin:orgs_auditlog_change", args=[entry.pk]), {"action": "tampered"})
    entry.refresh_from_db()
    assert entry.action == "create"
    assert "delete_selected" not in console.get(_changelist(AuditLog)).content.decode()


def test_it_filters_keys_by_status(console, alice_org, alice_key, charlie_org):
    old = ApiKey.objects.get(organization=alice_org)
    new = api_key_rotate(api_key=old, grace=timedelta(hours=1), actor="test").api_key
    revoked = api_key_issue(organization=charlie_org, label="gone", actor="test").api_key
    api_key_revoke(api_key=revoked, actor="test")
    expired = api_key_issue(organization=charlie_org, expires_at=timezone.now() - timedelta(seconds=1), actor="test")

    def listed(status: str) -> set[int]:
        response = console.get(_changelist(ApiKey), {"status": status})
        return {int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', response.content.decode())}

    assert listed("active") == {new.pk}
    assert listed("rotating") == {old.pk}
    assert listed("revoked") == {revoked.pk}
    assert listed("expired") == {expired.api_key.pk}
