"""Client addresses behind trusted proxies, /metrics, the per-request log line, and the health
endpoints' detail (Celery beat, routes in cool-down, live, ready)."""

from __future__ import annotations

import json
import logging
import os

import httpx
import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from core.client_ip import networks_parse
from gateway_site.log_format import JsonFormatter

pytestmark = pytest.mark.django_db(transaction=True)


def _chat(gateway, **headers) -> httpx.Response:
    response = httpx.post(
        f"{gateway.url}/api/ai/chat/completions", timeout=10,
        headers={"authorization": f"Bearer {gateway.key}", **headers},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "secret prompt words"}]},
    )
    assert response.status_code == 200, response.text
    return response


def _ledger_row(request_id: str):
    from billing.metering import ledger_flush_sync
    from billing.models import UsageRecord
    from tests.server_helpers import poll

    def row():
        ledger_flush_sync()
        return UsageRecord.objects.filter(request_id=request_id).first()

    return poll(row, timeout=5)


def test_the_ledger_has_the_client_address_a_trusted_proxy_forwarded(gateway):
    # The test server's peer is loopback, trusted by default (nginx on the same machine).
    response = _chat(gateway, **{"x-forwarded-for": "6.6.6.6, 203.0.113.9"})
    # Right-most untrusted address: 203.0.113.9 reached the proxy; 6.6.6.6 is the client's own claim.
    assert _ledger_row(response.headers["x-request-id"]).client_ip == "203.0.113.9"


def test_a_chain_of_trusted_proxies_is_walked_to_the_client(gateway, settings):
    settings.GATEWAY_TRUSTED_PROXIES = networks_parse(["127.0.0.1", "10.0.0.0/8"], setting="test")
    response = _chat(gateway, **{"x-forwarded-for": "198.51.100.7, 10.1.2.3"})
    assert _ledger_row(response.headers["x-request-id"]).client_ip == "198.51.100.7"


def test_a_client_that_is_not_a_trusted_proxy_cannot_forge_its_address(gateway, settings):
    settings.GATEWAY_TRUSTED_PROXIES = networks_parse(["10.0.0.0/8"], setting="test")
    response = _chat(gateway, **{"x-forwarded-for": "203.0.113.9"})
    assert _ledger_row(response.headers["x-request-id"]).client_ip == "127.0.0.1"


def test_with_no_trusted_proxies_forwarded_for_is_ignored(gateway, settings):
    settings.GATEWAY_TRUSTED_PROXIES = ()
    response = _chat(gateway, **{"x-forwarded-for": "garbage, 203.0.113.9"})
    assert _ledger_row(response.headers["x-request-id"]).client_ip == "127.0.0.1"


def test_a_malformed_trusted_proxies_setting_stops_start_up():
    with pytest.raises(ValueError, match="GATEWAY_TRUSTED_PROXIES: 'nginx' is not"):
        networks_parse(["127.0.0.1", "nginx"], setting="GATEWAY_TRUSTED_PROXIES")


def _samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _metrics(url: str) -> dict[tuple, float]:
    response = httpx.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200, response.text
    return _samples(response.text)


def test_metrics_count_requests_tokens_cost_and_refusals(gateway, alice_org):
    before = _metrics(gateway.url)
    response = _chat(gateway)
    bad = httpx.post(f"{gateway.url}/api/ai/chat/completions", headers={"authorization": "Bearer dm_nope"},
                     json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})
    assert bad.status_code == 401
    row = _ledger_row(response.headers["x-request-id"])
    after = _metrics(gateway.url)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    ok = dict(endpoint="openai", model="gpt-4o", provider="openai", status_class="2xx")
    assert delta("gateway_requests_total", **ok) == 1
    assert delta("gateway_requests_total", endpoint="openai", model="unknown", provider="", status_class="4xx") == 1
    org = alice_org.slug
    assert delta("gateway_tokens_total", organization=org, model="gpt-4o", kind="prompt") == row.prompt_tokens > 0
    assert delta("gateway_tokens_total", organization=org, model="gpt-4o", kind="completion") == row.completion_tokens
    assert delta("gateway_cost_usd_total", organization=org, model="gpt-4o") == pytest.approx(float(row.cost))
    assert delta("gateway_request_duration_seconds_count", endpoint="openai") == 2
    assert delta("gateway_upstream_response_seconds_count", provider="openai") == 1
    assert ("gateway_ledger_buffer_rows", ()) in after and ("gateway_requests_in_flight", ()) in after
    text = httpx.get(f"{gateway.url}/metrics").text
    assert gateway.key not in text and gateway.key[:12] not in text


def test_metrics_are_for_staff_or_allowed_addresses(gateway, settings, django_user_model):
    settings.GATEWAY_METRICS_ALLOWED_IPS = ()
    refused = httpx.get(f"{gateway.url}/metrics")
    assert refused.status_code == 403 and "GATEWAY_METRICS_ALLOWED_IPS" in refused.json()["detail"]
    # Forwarded-for from the (trusted) loopback peer does not make an outsider allowed.
    settings.GATEWAY_METRICS_ALLOWED_IPS = networks_parse(["127.0.0.1"], setting="test")
    assert httpx.get(f"{gateway.url}/metrics", headers={"x-forwarded-for": "203.0.113.9"}).status_code == 403
    settings.GATEWAY_METRICS_ALLOWED_IPS = ()
    client = Client()
    client.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    assert client.get("/metrics").status_code == 200
    client.force_login(django_user_model.objects.create_user("someone"))
    assert client.get("/metrics").status_code == 403


def test_one_json_log_line_per_request_without_the_key_or_the_prompt(gateway, alice_org, caplog):
    with caplog.at_level(logging.INFO, logger="gateway.requests"):
        response = _chat(gateway)
        row = _ledger_row(response.headers["x-request-id"])
    records = [r for r in caplog.records if r.name == "gateway.requests"]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    assert "\n" not in line
    data = json.loads(line)
    assert data["request_id"] == row.request_id
    assert data["organization"] == alice_org.slug
    assert data["key_prefix"] and gateway.key.startswith(data["key_prefix"]) and data["key_prefix"] != gateway.key
    assert (data["model"], data["provider"], data["status"]) == ("gpt-4o", "openai", 200)
    assert data["prompt_tokens"] == row.prompt_tokens and data["completion_tokens"] == row.completion_tokens
    assert data["cost_usd"] == format(row.cost, "f")
    assert data["latency_ms"] >= 0 and data["client_disconnected"] is False
    assert gateway.key not in line and "secret prompt words" not in line


def test_health_reports_celery_beat_and_routes_in_cool_down(catalog):
    from catalog.models import Route
    from ai_proxy.tasks import beat_heartbeat
    from core.shared_state import shared_state

    client = Client()
    body = client.get("/api/ai/health").json()
    assert body["celery_beat"] == {"status": "unknown", "last_beat": None}
    assert body["routes_cooling_down"] == []
    beat_heartbeat()  # what a worker runs on beat's schedule (tests/test_cluster.py: for real)
    route = Route.objects.select_related("provider").first()
    shared_state().set_sync(f"route:cool:{route.id}", "1", ttl=30)
    response = client.get("/api/ai/health")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "healthy"
    assert body["celery_beat"]["status"] == "ok" and body["celery_beat"]["last_beat"].endswith("+00:00")
    assert body["routes_cooling_down"] == [
        {"route": route.id, "provider": route.provider.name, "upstream_model": route.upstream_model}]


def test_live_and_ready(catalog, tmp_path, monkeypatch):
    client = Client()
    live = client.get("/api/ai/health/live")
    assert live.status_code == 200 and live.json()["status"] == "alive"
    ready = client.get("/api/ai/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    monkeypatch.setenv("GATEWAY_INSTANCE_DIR", str(tmp_path))
    (tmp_path / "draining").touch()  # what `serve` does on SIGTERM (tested for real in test_cluster)
    ready = client.get("/api/ai/health/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    assert client.get("/api/ai/health/live").status_code == 200


_FORKED_COUNTS = """
import os, sys
from core.metrics import REFUSALS

REFUSALS.labels("budget").inc()
child = os.fork()
if child == 0:
    REFUSALS.labels("budget").inc(2)  # a granian worker forked from the server
    os._exit(0)
os.waitpid(child, 0)
REFUSALS.labels("budget").inc()
"""


def test_multiprocess_metrics_add_up_over_forked_workers(tmp_path):
    # core.metrics asks the pid once per process (not on every update): a forked worker must
    # still write its own file, or its counts would overwrite its parent's.
    import subprocess
    import sys

    from django.conf import settings
    from prometheus_client import CollectorRegistry, multiprocess

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", _FORKED_COUNTS], env=env, cwd=settings.BASE_DIR, check=True, timeout=60)
    assert len(list(tmp_path.glob("counter_*.db"))) == 2  # the server's and the worker's
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    samples = {(s.name, s.labels.get("reason")): s.value
               for family in registry.collect() for s in family.samples}
    assert samples[("gateway_refusals_total", "budget")] == 4
