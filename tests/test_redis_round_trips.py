"""Round trips to Redis on the production path (issue 12), counted the way an operator would: with
`redis-cli monitor` on the gateway's own Redis database. A request whose key has RPM and TPM
limits and whose organization has a hard budget makes one round trip before the provider call
(admission, which also registers it in flight) and one after (settle, ledger row, end of its
in-flight entry, in one MULTI)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from urllib.parse import urlparse

import pytest
from django.conf import settings

from tests.proxy_helpers import set_budget

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL"),
    pytest.mark.skipif(not shutil.which("redis-cli"), reason="needs redis-cli"),
]


def _monitor_lines(run) -> list[str]:
    """MONITOR's lines for the gateway's Redis database while `run()` runs."""
    db = urlparse(settings.REDIS_URL).path.strip("/") or "0"
    proc = subprocess.Popen(["redis-cli", "-u", settings.REDIS_URL, "monitor"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "OK"
        run()
        time.sleep(0.3)  # metering is detached from the response
    finally:
        proc.terminate()
    out = proc.communicate(timeout=5)[0]
    return [line for line in out.splitlines() if f"[{db} " in line]


def _round_trips(lines: list[str], *marks: str) -> list[str]:
    """The request's round trips, in order: each command sent on its own, or each MULTI block
    (named by its commands), that touches one of `marks`. Commands run by scripts are inside
    their script's round trip."""
    trips: list[str] = []
    block: list[str] | None = None
    for line in lines:
        source, command = line.split("] ", 1)
        if source.endswith(" lua"):
            continue
        words = shlex.split(command)
        name = words[0].upper()
        if name == "MULTI":
            block = []
        elif name == "EXEC" and block is not None:
            if any(any(m in c for m in marks) for c in block):
                trips.append(" ".join(["MULTI", *(shlex.split(c)[0].upper() for c in block)]))
            block = None
        elif block is not None:
            block.append(command)
        elif any(m in command for m in marks):
            trips.append(name)
    return trips


def test_a_limited_and_budgeted_request_makes_one_round_trip_before_the_provider_and_one_after(gateway, alice_org):
    from orgs.models import ApiKey

    ApiKey.objects.filter(organization=alice_org).update(rpm_limit=1000, tpm_limit=10_000_000)
    set_budget(alice_org, "1000")
    client = gateway.openai()

    def chat():
        return client.chat.completions.with_raw_response.create(
            model="mock-echo", max_tokens=5, messages=[{"role": "user", "content": "hello"}])

    chat()  # the first request of a process also registers the process (heartbeat), once
    responses = []
    lines = _monitor_lines(lambda: responses.append(chat()))

    assert responses[0].status_code == 200
    request_id = responses[0].headers["x-request-id"]
    trips = _round_trips(lines, request_id, f"{{{alice_org.id}}}:")
    assert trips == ["EVALSHA", "MULTI EVALSHA RPUSH HDEL"], trips
    # The admission script registered the request in flight itself (a command run by the script).
    assert any(" lua] " in line and '"HSET"' in line and request_id in line for line in lines)
