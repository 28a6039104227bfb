"""The production path's Redis work alone: admission (limits, budget reservation, in-flight
registration) and settlement (the settle script, the ledger push, the end of the in-flight entry)
of one request, timed over many sequential requests on one event loop: what each request costs the
gateway in Redis round trips and client CPU, without HTTP. Used to decide on the C parser
(hiredis): run it with and without hiredis installed. Besides wall time per request it reports
the client's own CPU time per request (time.process_time: this process only, so what the other
processes on a shared machine do moves it far less than the wall time). `--concurrency N` runs N
requests at once on the loop (as a loaded gateway does): then commands issued in the same loop
turn share one write (core.shared_state._Pipelined). GATEWAY_REDIS_PIPELINED=0 measures redis-py's
connections through the lean pool instead.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/gateway_bench \\
    BENCH_REDIS_URL=redis://127.0.0.1:6379/12 .venv/bin/python -m tests.bench.redis_path [--requests 20000] \\
        [--concurrency 1]

Needs a database migrated by `make bench` (it adds an organization `redis-path` with a hard budget
and a key with RPM/TPM limits); the Redis database is flushed first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal


def _setup(database_url: str, redis_url: str) -> None:
    os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="gateway_site.settings")
    os.environ.setdefault("SECRET_KEY", "redis-path-bench-" + "x" * 40)
    import django

    django.setup()


async def _run(requests: int, key, tag: str = "") -> tuple[float, float]:
    from billing.admission import admit, settle
    from billing.inflight import lost_row
    from billing.metering import UsageEvent
    from billing.pricing import Prices

    prices = Prices(input=Decimal("2.5"), output=Decimal("10"))
    admit_s = settle_s = 0.0
    for i in range(requests):
        now = datetime.now(timezone.utc)
        event = UsageEvent(request_id=f"rp{os.getpid()}-{tag}{i}", started_at=now, endpoint="openai",
                           organization_id=key.organization_id, api_key_id=key.key_id, public_model="gpt-4o",
                           model_id=None, provider="openai", upstream_model="gpt-4o", route_id=None, streamed=False,
                           status=200, error_type="", prompt_tokens=20, completion_tokens=10, latency_ms=1,
                           client_ip="127.0.0.1", prices=prices)
        t0 = time.perf_counter()
        admission = await admit(key, started_at=now, prompt_tokens=30, worst_case=Decimal("0.001"),
                                in_flight=(event.request_id, lambda settle_: lost_row(event, Decimal("0.001"), settle_)))
        t1 = time.perf_counter()
        await settle(admission, cost=Decimal("0.0002"), tokens=30,
                     event=replace(event, in_flight="redis" if admission.in_flight else ""))
        t2 = time.perf_counter()
        admit_s += t1 - t0
        settle_s += t2 - t1
    return admit_s / requests * 1e6, settle_s / requests * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gateway_bench"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    args = parser.parse_args(argv)
    from tests.bench.run import _safe_targets

    _safe_targets(args.database_url, args.redis_url)
    _setup(args.database_url, args.redis_url)
    from decimal import Decimal as D

    import redis
    from django.conf import settings

    from billing.services import budget_set
    from orgs.models import Organization
    from orgs.selectors import _context_from_db
    from orgs.services import api_key_issue, organization_create

    redis.Redis.from_url(args.redis_url).flushdb()
    org = Organization.objects.filter(slug="redis-path").first() or organization_create(
        slug="redis-path", name="Redis path bench", actor="bench")
    budget_set(organization=org, api_key=None, amount_usd=D("100000000"), period="month", mode="hard",
               thresholds=None, actor="bench")
    plaintext = api_key_issue(organization=org, label="redis path", rpm_limit=10_000_000, tpm_limit=2_000_000_000,
                              actor="bench").plaintext
    key = _context_from_db(plaintext)
    try:
        import hiredis  # noqa: F401

        parser_name = "hiredis (C)"
    except ImportError:
        parser_name = "pure Python"
    loop = asyncio.new_event_loop()
    loop.run_until_complete(_run(min(500, args.requests), key))  # warm-up: scripts loaded, process registered
    concurrency = max(1, args.concurrency)
    each = args.requests // concurrency

    async def together():
        return await asyncio.gather(*(_run(each, key, f"c{n}-") for n in range(concurrency)))

    wall, cpu = time.perf_counter(), time.process_time()
    results = loop.run_until_complete(together())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = each * concurrency
    admit_us = sum(r[0] for r in results) / concurrency
    settle_us = sum(r[1] for r in results) / concurrency
    connection = "pipelined" if getattr(settings, "GATEWAY_REDIS_PIPELINED", False) else "redis-py pool"
    print(f"{done} requests, {concurrency} at a time, Redis parser {parser_name}, {connection}: admission "
          f"{admit_us:.0f} us, settlement {settle_us:.0f} us (wall, per request each); {wall / done * 1e6:.0f} us "
          f"wall and {cpu / done * 1e6:.0f} us of this process's CPU per request overall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
