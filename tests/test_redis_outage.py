"""A production server whose Redis dies: keys are still checked, hard budgets refuse with a
retryable 503 (unless the operator chose fail-open), rate limits still hold per process, health
says unhealthy, and the log says so once.

Each test runs its own memory-only redis-server and `manage.py serve` (one worker, production
settings) pointed at it, then kills that Redis.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.fake_fixtures import point_catalog_at
from tests.proxy_helpers import set_budget
from tests.server_helpers import REDIS_SERVER, free_port, poll, process_env, process_stop, redis_start, serve_start

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="needs a redis-server binary"),
]

OUTAGE_LINE = "Redis (REDIS_URL) is unreachable"
RECOVERY_LINE = "Redis (REDIS_URL) is reachable again"


@dataclass
class Served:
    url: str
    proc: subprocess.Popen
    redis: subprocess.Popen
    redis_port: int
    log: Path

    def kill_redis(self) -> None:
        self.redis.kill()
        self.redis.wait()

    def restart_redis(self) -> None:
        self.redis = redis_start(self.redis_port)

    def log_lines(self, text: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if text in line]


@pytest.fixture
def start_served(fake_provider, monkeypatch, tmp_path):
    point_catalog_at(fake_provider.url, monkeypatch)
    started: list[Served] = []

    def start(**env: str) -> Served:
        port = free_port()
        redis = redis_start(port)
        log = tmp_path / "serve.log"
        with log.open("wb") as stderr:
            url, proc = serve_start(process_env(REDIS_URL=f"redis://127.0.0.1:{port}/0",
                                                DJANGO_SETTINGS_MODULE="gateway_site.settings",
                                                LOG_FORMAT="plain", **env),  # the log is read as text
                                    workers=1, stderr=stderr)
        served = Served(url, proc, redis, port, log)
        started.append(served)
        return served

    yield start
    for served in started:
        process_stop(served.proc)
        served.kill_redis()


def _client(served: Served, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.url}/api/ai", api_key=key, max_retries=0, timeout=15)


def _ask(client: openai.OpenAI):
    return client.chat.completions.with_raw_response.create(
        model="mock-echo", max_tokens=100, messages=[{"role": "user", "content": "hello"}])


def _status(client: openai.OpenAI) -> int:
    try:
        return _ask(client).status_code
    except openai.APIStatusError as exc:
        return exc.status_code


def _hard_budget(org, usd: str) -> None:
    set_budget(org, usd)


def test_a_key_revoked_during_the_outage_is_refused(start_served, alice_org):
    from orgs.services import api_key_issue, api_key_revoke

    issued = api_key_issue(organization=alice_org, label="to revoke", actor="test")
    served = start_served()
    client = _client(served, issued.plaintext)
    assert _status(client) == 200  # cached by the server
    served.kill_redis()
    assert _status(client) == 200  # still a good key

    api_key_revoke(api_key=issued.api_key, actor="test")

    assert poll(lambda: _status(client) == 401, timeout=3.0), "a key revoked during the outage still works"


def test_a_hard_budget_is_refused_with_a_retryable_503(start_served, alice_org, alice_key):
    _hard_budget(alice_org, "100")
    served = start_served()
    client = _client(served, alice_key)
    assert _status(client) == 200
    served.kill_redis()

    with pytest.raises(openai.InternalServerError) as exc:
        _ask(client)

    assert exc.value.status_code == 503
    assert exc.value.code == "budget_unavailable"
    assert exc.value.response.headers["x-should-retry"] == "true"
    message = exc.value.response.json()["error"]["message"]
    assert "hard monthly budget" in message and "retry shortly" in message


def test_a_hard_budget_admits_requests_when_the_operator_chose_fail_open(start_served, alice_org, alice_key):
    _hard_budget(alice_org, "100")
    served = start_served(GATEWAY_BUDGET_FAIL_OPEN="1")
    client = _client(served, alice_key)
    served.kill_redis()

    assert [_status(client) for _ in range(3)] == [200, 200, 200]


def test_rate_limits_still_hold_per_process(start_served, alice_org):
    from orgs.services import api_key_issue

    into = time.time() % 60
    if into > 45:  # the 30 requests must fall in one calendar-minute window
        time.sleep(60 - into + 0.2)
    limited = api_key_issue(organization=alice_org, label="limited", rpm_limit=10, actor="test").plaintext
    served = start_served()
    served.kill_redis()
    client = _client(served, limited)

    statuses = [_status(client) for _ in range(30)]

    assert statuses.count(200) == 10 and statuses.count(429) == 20
    assert statuses[:10] == [200] * 10


def test_health_and_the_log_report_the_outage_once(start_served, alice_org, alice_key):
    from orgs.services import api_key_issue

    _hard_budget(alice_org, "100")
    limited = api_key_issue(organization=alice_org, label="limited", rpm_limit=1000, actor="test").plaintext
    served = start_served()
    health = httpx.get(f"{served.url}/api/ai/health", timeout=15)
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    served.kill_redis()

    for key in (alice_key, limited) * 5:  # budget checks, rate limits and ledger rows all hit Redis
        _status(_client(served, key))
    health = httpx.get(f"{served.url}/api/ai/health", timeout=15)

    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "unhealthy" and body["database"] == "ok"
    assert body["cache"].startswith("error: ") and body["providers"] and body["timestamp"].endswith("+00:00")
    [outage] = served.log_lines(OUTAGE_LINE)
    assert " ERROR " in outage and "hard budgets refuse requests with 503" in outage
    assert not served.log_lines("Traceback")
    assert not served.log_lines("Service Unavailable"), "one line for the outage, not one per request"

    served.restart_redis()
    assert poll(lambda: httpx.get(f"{served.url}/api/ai/health", timeout=15).status_code == 200, timeout=5.0)
    assert _status(_client(served, alice_key)) == 200
    assert len(served.log_lines(RECOVERY_LINE)) == 1
    assert len(served.log_lines(OUTAGE_LINE)) == 1
