"""GET /api/ai/admin/usage: staff only (staff token or session), OpenAI-style buckets, cursor
pagination that walks the whole range exactly once."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from billing.hourly_rollup import usage_rollup_hours
from billing.models import UsageRecord
from orgs.members import staff_token_issue
from tests.usage_seed import seed_traffic

pytestmark = pytest.mark.usefixtures("empty_ledger_buffer")

UTC = timezone.utc


@pytest.fixture
def token(db):
    user = User.objects.create_user("olivia", password="pw", is_staff=True)
    return staff_token_issue(user=user, actor="test").plaintext


def get(token, **params):
    response = APIClient().get("/api/ai/admin/usage", params, HTTP_AUTHORIZATION=f"Bearer {token}")
    return response, json.loads(response.content, parse_float=D)


@pytest.mark.django_db
def test_it_pages_through_buckets_grouped_by_organization_and_model(token, alice_org, alice_key, charlie_org, charlie_key):
    seed_traffic(alice_org, charlie_org)
    usage_rollup_hours()
    start = (datetime.now(UTC) - timedelta(days=4)).date()
    seen, cursor, pages = [], None, 0
    while True:
        params = {"start": start.isoformat(), "bucket": "1d", "group_by": "organization,model", "limit": 2}
        if cursor:
            params["page"] = cursor
        response, body = get(token, **params)
        assert response.status_code == 200, body
        assert body["object"] == "page" and all(b["object"] == "bucket" for b in body["data"])
        seen.extend(body["data"])
        pages += 1
        if not body["has_more"]:
            assert body["next_page"] is None
            break
        cursor = body["next_page"]
    assert pages == 3 and len(seen) == 5
    assert [b["start_time"] for b in seen] == sorted({b["start_time"] for b in seen})
    results = [r for b in seen for r in b["results"]]
    assert {(r["organization"], r["model"]) for r in results} >= {("alice", "gpt-4o"), ("charlie", "mock-echo")}
    assert sum(r["cost_usd"] for r in results) == sum((r.cost for r in UsageRecord.objects.all()), D(0))
    assert sum(r["num_model_requests"] for r in results) == UsageRecord.objects.count()


@pytest.mark.django_db
def test_hourly_buckets_group_by_key(token, alice_org, alice_key, charlie_org, charlie_key):
    seed_traffic(alice_org, charlie_org)
    response, body = get(token, start=(datetime.now(UTC) - timedelta(hours=3)).isoformat(), bucket="1h", group_by="key")
    assert response.status_code == 200
    assert len(body["data"]) == 4  # three whole hours back plus the current one
    prefixes = {r["api_key_prefix"] for b in body["data"] for r in b["results"]}
    assert prefixes and all(p.startswith(("dm_alice_", "dm_charlie_")) for p in prefixes)
    assert all(r["organization"] is None and r["model"] is None for b in body["data"] for r in b["results"])


@pytest.mark.django_db
def test_it_takes_the_staff_session(client, alice_org):
    User.objects.create_superuser("root", "r@example.com", "pw")
    client.login(username="root", password="pw")
    assert client.get("/api/ai/admin/usage?start=2025-01-01&end=2025-01-02").status_code == 200


@pytest.mark.django_db
def test_it_refuses_organization_keys_non_staff_and_revoked_tokens(token, alice_key):
    response, body = get(alice_key, start="2025-01-01")
    assert response.status_code == 401 and "staff token" in body["error"]["message"]
    response, body = APIClient().get("/api/ai/admin/usage", {"start": "2025-01-01"}), None
    assert response.status_code == 401
    User.objects.filter(username="olivia").update(is_staff=False)
    response, body = get(token, start="2025-01-01")
    assert response.status_code == 401 and body["error"]["message"] == "Invalid or revoked staff token."


@pytest.mark.django_db
def test_bad_parameters_are_400s_in_the_openai_shape(token):
    for params, param in (({}, "start"), ({"start": "yesterday"}, "start"), ({"start": "2025-01-01", "bucket": "1w"}, "bucket"),
                          ({"start": "2025-01-01", "group_by": "project"}, "group_by"),
                          ({"start": "2025-01-01", "limit": "500"}, "limit"), ({"start": "2025-01-01", "page": "%%%"}, "page"),
                          ({"start": "2025-01-02", "end": "2025-01-01"}, "end")):
        response, body = get(token, **params)
        assert response.status_code == 400, params
        assert body["error"]["param"] == param and body["detail"]


def test_json_writes_decimals_as_exact_numbers_and_strings_as_strings():
    """The renderer hands the work to the C encoder with Decimals tagged: a string that looks
    like a tag stays a string, and every Decimal comes out as the same plain number."""
    from billing.renderers import decimal_json

    data = {"cost_usd": D("0.0000123000"), "total": D("12.0000000000"), "zero": D("-0E-10"), "n": 3, "f": 2.5,
            "model": 'dec0123456789abcdef:1.5 "quoted" é', "list": [D("1E+2"), None, True]}
    assert decimal_json(data) == (
        '{"cost_usd":0.0000123,"total":12,"zero":0,"n":3,"f":2.5,'
        '"model":"dec0123456789abcdef:1.5 \\"quoted\\" \\u00e9","list":[100,null,true]}'
    )
    assert json.loads(decimal_json(data), parse_float=D)["cost_usd"] == D("0.0000123")
