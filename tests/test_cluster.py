"""The production topology end to end (issue 11), started by deploy/cluster.sh itself on free
loopback ports: nginx with the project's configuration in front of two `manage.py serve`
instances (two granian workers each), a Celery worker and beat, and the fake provider.

Needs PostgreSQL, Redis and nginx; select it with `pytest -m cluster`. Every process the script
starts is stopped when the test ends, whatever happened.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from django.conf import settings
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from tests.fake_fixtures import point_catalog_at
from tests.fake_provider import OPENAI_CHAT, FakeResponse
from tests.server_helpers import BASE_DIR, free_port, poll, process_env

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql" or not settings.REDIS_URL,
                       reason="the cluster needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL)"),
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (apt-get install -y nginx)"),
]
SCRIPT = str(BASE_DIR / "deploy" / "cluster.sh")


class Cluster:
    def __init__(self, run_dir: Path, env: dict[str, str]) -> None:
        self.run_dir, self.env = run_dir, env
        self.port = int(env["CLUSTER_PORT"])
        self.gateway_ports = [int(p) for p in env["CLUSTER_GATEWAY_PORTS"].split()]
        self.url = f"http://127.0.0.1:{self.port}"

    def script(self, command: str, timeout: float = 120) -> None:
        result = subprocess.run([SCRIPT, command], cwd=BASE_DIR, env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"cluster.sh {command} failed:\n{result.stdout}\n{result.stderr}\n{self.logs()}")

    def pid(self, name: str) -> int:
        return int((self.run_dir / f"{name}.pid").read_text())

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.run_dir.glob("*.log")))

    def kill_leftovers(self) -> None:
        """Whatever `stop` did not stop (it failed, or timed out): SIGKILL by recorded pid."""
        for pidfile in [*self.run_dir.glob("*.pid"), self.run_dir / "nginx" / "nginx.pid"]:
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except (FileNotFoundError, ValueError, ProcessLookupError):
                pass

    def host(self, org: str) -> dict[str, str]:
        return {"host": f"api.{org}.test"}

    def openai(self, key: str, org: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/api/ai", api_key=key, max_retries=0,
                             default_headers=self.host(org), timeout=30)

    def anthropic(self, key: str, org: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=f"{self.url}/api/ai/anthropic", api_key=key, max_retries=0,
                                   default_headers=self.host(org), timeout=30)

    def metrics(self, port: int) -> dict[tuple, float]:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert response.status_code == 200, response.text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(response.text) for s in family.samples}


@pytest.fixture
def cluster(tmp_path, fake_provider, monkeypatch):
    point_catalog_at(fake_provider.url, monkeypatch)
    run_dir = tmp_path / "cluster"
    env = process_env(
        REDIS_URL=settings.REDIS_URL,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        CLUSTER_PORT=str(free_port()),
        CLUSTER_GATEWAY_PORTS=f"{free_port()} {free_port()}",
        CLUSTER_RUN_DIR=str(run_dir),
        CLUSTER_SKIP_SETUP="1",  # the test database is migrated, its catalog set up by the test
        GATEWAY_WORKERS="2",
        GATEWAY_READY_GRACE_SECONDS="3",
        GATEWAY_DRAIN_SECONDS="60",
        STOP_WAIT_SECONDS="30",
        LOG_FORMAT="json",
        GATEWAY_REQUEST_LOG="1",  # into the cluster's log files
        ALERT_WEBHOOK_ALLOW_PRIVATE="1",  # the alert receiver is on loopback
    )
    cluster = Cluster(run_dir, env)
    try:
        cluster.script("start")
        yield cluster
    finally:
        try:
            cluster.script("stop", timeout=150)
        finally:
            cluster.kill_leftovers()
            with connection.cursor() as cursor:  # let pytest-django empty and drop the database
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()")


def _ledger(request_ids: set[str], timeout: float = 20.0) -> list:
    from billing.models import UsageRecord

    def rows():
        found = list(UsageRecord.objects.filter(request_id__in=request_ids))
        return found if len(found) >= len(request_ids) else None

    return poll(rows, timeout=timeout) or list(UsageRecord.objects.filter(request_id__in=request_ids))


def _stream_openai(client: openai.OpenAI, text: str) -> tuple[str, str]:
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": text}],
    ) as response:
        request_id = response.headers["x-request-id"]
        content = "".join(chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices)
    return request_id, content


def test_the_cluster_end_to_end(cluster, fake_provider, alice_org, alice_key, charlie_org, charlie_key):
    from billing.alert_channels.webhook import secret_new
    from billing.models import AlertChannel, Budget, DailyUsage, UsageRecord
    from billing.tasks import budget_alerts_scan
    from tests.webhook_receiver import receiver_start
    from orgs.models import VanityDomain
    from orgs.services import api_key_issue, organization_create

    VanityDomain.objects.create(organization=charlie_org, hostname="api.charlie.test")
    bob = organization_create(slug="bob", name="Bob", domains=["api.bob.test"], actor="test")
    bob_key = api_key_issue(organization=bob, label="bob", actor="test").plaintext
    Budget.objects.create(organization=bob, amount_usd=Decimal("0.05"), period="month", mode="hard", thresholds="50")
    receiver, receiver_server = receiver_start()
    AlertChannel.objects.create(organization=bob, kind="webhook", target=receiver.url, secret=secret_new())
    limited_key = api_key_issue(organization=alice_org, label="limited", rpm_limit=3, actor="test").plaintext
    sent: set[str] = set()  # request ids of every metered request: one ledger row each
    unauthenticated = 0  # refused before a key was accepted: counted in /metrics, no ledger row

    # --- health, live and ready on each instance and through nginx
    for port in cluster.gateway_ports:
        assert httpx.get(f"http://127.0.0.1:{port}/api/ai/health/live").json()["status"] == "alive"
        ready = httpx.get(f"http://127.0.0.1:{port}/api/ai/health/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
    health = httpx.get(f"{cluster.url}/api/ai/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    assert health.json()["database"] == "ok" and health.json()["cache"] == "ok"

    # --- both formats, streaming and not, two organizations on their own domains
    for key, org in ((alice_key, "alice"), (charlie_key, "charlie")):
        chat = cluster.openai(key, org).chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"hello from {org}"}])
        assert chat.parse().choices[0].message.content == f"echo: hello from {org}"
        sent.add(chat.headers["x-request-id"])
        request_id, content = _stream_openai(cluster.openai(key, org), f"stream {org}")
        assert content == f"echo: stream {org}"
        sent.add(request_id)
        message = cluster.anthropic(key, org).messages.with_raw_response.create(
            model="claude-3-5-sonnet", max_tokens=50, messages=[{"role": "user", "content": f"hi {org}"}])
        assert message.parse().content[0].text == f"echo: hi {org}"
        sent.add(message.headers["request-id"])
        with cluster.anthropic(key, org).messages.stream(
                model="claude-3-5-sonnet", max_tokens=50, messages=[{"role": "user", "content": f"s {org}"}]) as stream:
            assert stream.get_final_text() == f"echo: s {org}"
            sent.add(stream.response.headers["request-id"])

    # --- each key refused on the other's domain; an unregistered host refused
    for key, org in ((alice_key, "charlie"), (charlie_key, "alice")):
        with pytest.raises(openai.AuthenticationError) as refused:
            cluster.openai(key, org).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        assert f"api.{org}.test" in refused.value.message
        unauthenticated += 1
    unknown = httpx.post(f"{cluster.url}/api/ai/chat/completions", headers={"host": "api.nobody.test"},
                         json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "invalid_host"

    # --- a rate limit (3 a minute) holds across both instances (nginx alternates between them)
    statuses = []
    for _ in range(6):
        response = httpx.post(f"{cluster.url}/api/ai/chat/completions", timeout=10,
                              headers={**cluster.host("alice"), "authorization": f"Bearer {limited_key}"},
                              json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})
        statuses.append(response.status_code)
        sent.add(response.headers["x-request-id"])
    assert statuses == [200, 200, 200, 429, 429, 429]

    # --- a hard budget ($0.05; each answer costs ~$0.01) holds across both instances
    for _ in range(10):
        fake_provider.enqueue(OPENAI_CHAT, FakeResponse(usage={"completion_tokens": 1000, "total_tokens": 1005}))
    budget_statuses = []
    for _ in range(10):
        response = httpx.post(f"{cluster.url}/api/ai/chat/completions", timeout=10,
                              headers={**cluster.host("bob"), "authorization": f"Bearer {bob_key}"},
                              json={"model": "gpt-4o", "max_tokens": 1000, "messages": [{"role": "user", "content": "x"}]})
        budget_statuses.append(response.status_code)
        sent.add(response.headers["x-request-id"])
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "budget_exceeded"
            break
    fake_provider.clear()
    assert budget_statuses[-1] == 429 and set(budget_statuses[:-1]) == {200}
    assert sum(r.cost for r in UsageRecord.objects.filter(organization=bob)) <= Decimal("0.05")

    # --- /metrics on each instance (both workers' counts added up) match what was sent
    assert len(_ledger(sent)) == len(sent)
    instance_metrics = [cluster.metrics(port) for port in cluster.gateway_ports]
    counted = [sum(v for (name, _), v in m.items() if name == "gateway_requests_total") for m in instance_metrics]
    assert sum(counted) == len(sent) + unauthenticated, counted
    assert all(counted), f"nginx must have used both instances: {counted}"
    refusals = sum(m.get(("gateway_refusals_total", (("reason", "rate_limit"),)), 0) for m in instance_metrics)
    assert refusals == 3
    assert sum(m.get(("gateway_refusals_total", (("reason", "budget"),)), 0) for m in instance_metrics) == 1

    # --- SIGTERM one instance while 50 streams are open: all finish, new requests go to the other
    fake_provider.stream_delay = 0.15  # "echo: drain N" streams in 3 events and a usage chunk
    victim_port = cluster.gateway_ports[0]
    victim = cluster.pid(f"gateway-{victim_port}")
    opened = threading.Barrier(51, timeout=30)
    streams: list[tuple[str, str]] = []

    def one_stream(i: int) -> None:
        client = cluster.openai(alice_key, "alice")
        with client.chat.completions.with_streaming_response.create(
            model="gpt-4o", stream=True, messages=[{"role": "user", "content": f"drain {i}"}],
        ) as response:
            chunks = iter(response.parse())
            first = next(chunks)
            opened.wait()
            rest = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            streams.append((response.headers["x-request-id"], (first.choices[0].delta.content or "") + rest))

    pool = ThreadPoolExecutor(max_workers=50)
    futures = [pool.submit(one_stream, i) for i in range(50)]
    opened.wait()
    open_on_victim = cluster.metrics(victim_port)[("gateway_open_streams", ())]
    assert open_on_victim > 0
    os.kill(victim, signal.SIGTERM)
    # For the readiness grace (3 s here) the victim still answers, and says it is draining.
    ready_url = f"http://127.0.0.1:{victim_port}/api/ai/health/ready"
    draining = poll(lambda: (r := httpx.get(ready_url, timeout=2)).status_code == 503 and r, timeout=2, every=0.05)
    assert draining.status_code == 503 and draining.json()["status"] == "draining"
    meanwhile = []
    deadline = time.monotonic() + 6  # past the grace: the victim's listener is closed by then
    while time.monotonic() < deadline:
        response = httpx.post(f"{cluster.url}/api/ai/chat/completions", timeout=10,
                              headers={**cluster.host("alice"), "authorization": f"Bearer {alice_key}"},
                              json={"model": "gpt-4o", "messages": [{"role": "user", "content": "meanwhile"}]})
        meanwhile.append(response.status_code)
        sent.add(response.headers.get("x-request-id", ""))
    for future in futures:
        future.result(timeout=60)
    pool.shutdown()
    assert meanwhile and set(meanwhile) == {200}, meanwhile
    assert sorted(text for _, text in streams) == sorted(f"echo: drain {i}" for i in range(50))
    assert poll(lambda: subprocess.run(["kill", "-0", str(victim)], capture_output=True).returncode != 0,
                timeout=30), "the drained instance exits"
    sent |= {request_id for request_id, _ in streams}
    rows = _ledger(sent)
    assert len(rows) == len(sent) and {r.request_id for r in rows} == sent  # exactly one row each
    assert all(r.status == 200 and not r.client_disconnected for r in rows if r.request_id in dict(streams))

    # --- the worker rolls up usage when asked through the broker (a closed day: yesterday)
    from billing.tasks import usage_rollup

    yesterday = dt.date.today() - dt.timedelta(days=1)
    alice_rows = UsageRecord.objects.filter(organization=alice_org)
    expected = alice_rows.count()
    alice_rows.update(created_at=dt.datetime.combine(yesterday, dt.time(12), tzinfo=dt.timezone.utc))
    usage_rollup.apply_async(args=[yesterday.isoformat()])
    rolled = poll(lambda: sum(DailyUsage.objects.filter(day=yesterday, organization=alice_org)
                              .values_list("requests", flat=True)) == expected, timeout=20)
    assert rolled, "the worker rolled up yesterday's ledger rows"

    # --- the worker delivers bob's budget alerts once each, however often it scans: over 50% used,
    # and exceeded (the hard budget's refusal above counts as crossing 100%, signalled by admission)
    budget_alerts_scan.apply_async()
    assert poll(lambda: len(receiver.requests) >= 2, timeout=20), "the budget alerts were delivered"
    budget_alerts_scan.apply_async()
    time.sleep(3)
    receiver_server.shutdown()
    alerts = [json.loads(r.body) for r in receiver.requests]
    assert sorted((a["type"], a["threshold_percent"]) for a in alerts) == [
        ("budget.exceeded", 100), ("budget.threshold_crossed", 50)]
    assert all(a["organization"] == "bob" for a in alerts)
    assert all(r.headers.get("webhook-signature") for r in receiver.requests)

    # --- beat schedules the heartbeat, a worker runs it, health shows it
    beat = poll(lambda: httpx.get(f"{cluster.url}/api/ai/health").json()["celery_beat"]["status"] == "ok", timeout=30)
    assert beat, httpx.get(f"{cluster.url}/api/ai/health").json()
