"""`make bench-dashboard`: a year of hourly roll-ups for 100 organizations and 1,000 keys (about
5 million rows, generated inside PostgreSQL with generate_series) and the time of each dashboard
page against it, through Django's full stack (middleware, templates), logged in as staff.

    make bench-dashboard                                   # database bench_dashboard, rebuilt
    make bench-dashboard ARGS="--reuse"                    # keep the generated rows
    DASHBOARD_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/mydb make bench-dashboard

Sparsity: each key has its own activity (4.5-46.5% of hours), 1-3 models per active hour, an error
row in one active hour in five; busier keys belong to busier organizations. Every hour is marked
rolled up, the day tables are derived from the hours as the roll-up derives them, and the
current hour has a few ledger rows, as on a live gateway.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from urllib.parse import urlparse

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_dashboard"


def _database_reset(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _generate(orgs: int, keys: int, days: int) -> None:
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    from billing.hourly_rollup import usage_days_derive_all

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    with connection.cursor() as cur:
        cur.execute(f"""
            INSERT INTO orgs_organization (slug, name, is_active, alert_emails, alert_webhook_url,
                                           store_content, created_at, updated_at)
            SELECT 'org-' || i, 'Organization ' || i, true, '', '', false, now(), now()
            FROM generate_series(1, {orgs}) i""")
        # Keys spread over organizations with a skew: low-numbered organizations hold more keys.
        cur.execute(f"""
            INSERT INTO orgs_apikey (organization_id, label, environment, prefix, key_hash, last_four, created_at)
            SELECT o.id, 'key ' || k, 'prod', 'dm_' || o.slug || '_prod_' || lpad(k::text, 8, '0'), md5(k::text), '0000', now()
            FROM (SELECT k, 1 + floor({orgs} * power(random(), 1.6))::int AS org FROM generate_series(1, {keys}) k) ks(k, org)
            JOIN orgs_organization o ON o.slug = 'org-' || ks.org""")
        cur.execute("""
            INSERT INTO billing_budget (organization_id, api_key_id, amount_usd, period, mode, thresholds, created_at, updated_at)
            SELECT id, NULL, 500, 'month', 'hard', '50,80,100', now(), now() FROM orgs_organization""")
        cur.execute("""
            INSERT INTO billing_budget (organization_id, api_key_id, amount_usd, period, mode, thresholds, created_at, updated_at)
            SELECT organization_id, id, 50, 'day', 'soft', '80,100', now(), now() FROM orgs_apikey WHERE id % 10 = 0""")
        for index in ("hourly_usage_hour", "hourly_usage_org_hour", "hourly_usage_key_hour"):
            cur.execute(f"DROP INDEX IF EXISTS {index}")
        cur.execute("CREATE TEMP TABLE bench_keys AS SELECT id, organization_id, 0.045 + 0.42 * random() AS p FROM orgs_apikey")
        cur.execute(f"""
            INSERT INTO billing_hourlyusage (hour, organization_id, api_key_id, model_name, provider, endpoint, status_class,
                requests, prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, cost, latency_ms_sum,
                latency_b0, latency_b1, latency_b2, latency_b3, latency_b4, latency_b5, latency_b6, latency_b7,
                latency_b8, latency_b9, latency_b10, latency_b11, ttft_b0, ttft_b1, ttft_b2, ttft_b3, ttft_b4,
                ttft_b5, ttft_b6, ttft_b7, ttft_b8, ttft_b9, ttft_b10, ttft_b11)
            SELECT hk.hour, hk.organization_id, hk.id,
                   (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet', 'claude-haiku', 'o3'])[m.n],
                   CASE WHEN m.n IN (3, 4) THEN 'anthropic' ELSE 'openai' END,
                   CASE WHEN m.n IN (3, 4) THEN 'anthropic' ELSE 'openai' END,
                   s.cls, r.req, r.req * 900, r.req * 220, r.req * 300, r.req * 20,
                   round((r.req * 0.0041)::numeric, 10), r.req * 1400,
                   0, 0, r.req / 10, r.req / 5, r.req / 3, r.req - r.req / 10 - r.req / 5 - r.req / 3, 0, 0, 0, 0, 0, 0,
                   0, 0, r.req / 2, r.req - r.req / 2, 0, 0, 0, 0, 0, 0, 0, 0
            FROM (
                SELECT h.hour, k.id, k.organization_id
                FROM generate_series(date_trunc('hour', now()) - interval '{days} days',
                                     date_trunc('hour', now()) - interval '1 hour', interval '1 hour') h(hour)
                CROSS JOIN bench_keys k
                -- The hour in the condition keeps it per (hour, key): on bench_keys alone the
                -- planner would draw once per key, and a key would be active always or never.
                WHERE random() + 0 * extract(epoch FROM h.hour) < k.p
            ) hk
            -- Every random() below mentions an outer column: an uncorrelated one would run once.
            CROSS JOIN LATERAL generate_series(1, 1 + floor(random() * 3 + 0 * hk.id)::int) g(i)
            CROSS JOIN LATERAL (SELECT 1 + ((hk.id + g.i) % 5) AS n) m
            CROSS JOIN LATERAL (SELECT unnest(CASE WHEN random() + 0 * g.i < 0.2
                                   THEN ARRAY['2xx', (ARRAY['4xx', '429', '5xx'])[1 + floor(random() * 3)::int]]
                                   ELSE ARRAY['2xx'] END) AS cls) s
            CROSS JOIN LATERAL (SELECT CASE WHEN s.cls = '2xx' THEN 1 + floor(random() * 40)::int ELSE 1 END AS req) r""")
        cur.execute(f"""
            INSERT INTO billing_rolluphour (hour, rolled_up_at, ledger_rows, dirty)
            SELECT h, now(), 0, false FROM generate_series(date_trunc('hour', now()) - interval '{days} days',
                   date_trunc('hour', now()) - interval '1 hour', interval '1 hour') h""")
        cur.execute("""
            INSERT INTO billing_usagerecord (request_id, created_at, organization_id, api_key_id, requested_model, model_name,
                provider, upstream_model, endpoint, streamed, status, error_type, prompt_tokens, completion_tokens,
                cache_read_tokens, cache_write_tokens, tokens_estimated, cost, input_price, output_price, cache_read_price,
                cache_write_price, latency_ms, client_disconnected, lost_in_flight)
            SELECT 'bench-' || i, date_trunc('hour', now()) + (i % 50) * interval '1 second', k.organization_id, k.id,
                   'gpt-4o', 'gpt-4o', 'openai', 'gpt-4o', 'openai', false, 200, '', 900, 200, 0, 0, false, 0.004,
                   0, 0, 0, 0, 1200, false, false
            FROM generate_series(1, 2000) i JOIN orgs_apikey k ON k.id = 1 + i % 1000""")
        cur.execute("CREATE INDEX hourly_usage_hour ON billing_hourlyusage (hour)")
        cur.execute("CREATE INDEX hourly_usage_org_hour ON billing_hourlyusage (organization_id, hour)")
        cur.execute("CREATE INDEX hourly_usage_key_hour ON billing_hourlyusage (api_key_id, hour)")
    # Whole days derived from the hours as the roll-up does it.
    print(f"{usage_days_derive_all():,} daily rows derived from the hours")
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")  # as autovacuum would soon after: statistics, visibility map
    if not User.objects.filter(username="bench-staff").exists():
        User.objects.create_superuser("bench-staff", "bench@example.com", "bench")
    print(f"generated in {time.monotonic() - started:.0f} s")


def _pages() -> list[tuple[str, str]]:
    from billing.models import HourlyUsage
    from django.db.models import Count
    from orgs.models import ApiKey, Organization

    # The busiest organization and key: the worst case for their pages.
    top_org = Organization.objects.annotate(n=Count("api_keys")).order_by("-n").first()
    top_key = ApiKey.objects.filter(organization=top_org).order_by("pk").first()
    assert HourlyUsage.objects.exists()
    org, key = top_org.slug, top_key.prefix
    return [
        ("overview 24h", "/dashboard/?range=24h"),
        ("overview 7d", "/dashboard/?range=7d"),
        ("overview 7d by model", "/dashboard/?range=7d&stack=model"),
        ("overview 30d", "/dashboard/?range=30d"),
        ("overview 90d", "/dashboard/?range=90d"),
        ("organization 7d", f"/dashboard/orgs/{org}/?range=7d"),
        ("organization 30d", f"/dashboard/orgs/{org}/?range=30d"),
        ("organization 90d", f"/dashboard/orgs/{org}/?range=90d"),
        ("key 30d", f"/dashboard/orgs/{org}/keys/{key}/?range=30d"),
        ("ledger (drill-down)", f"/dashboard/ledger/?range=7d&org={org}"),
        ("CSV export 7d, all orgs", "/dashboard/export.csv?range=7d"),
        ("staff API 30d, 1d x org,model", "/api/ai/admin/usage?start=-30&bucket=1d&group_by=organization,model&limit=31"),
    ]


def _measure(runs: int) -> list[tuple[str, float, float, int]]:
    from datetime import datetime, timedelta, timezone

    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username="bench-staff"))
    results = []
    for name, url in _pages():
        url = url.replace("start=-30", "start=" + (datetime.now(timezone.utc) - timedelta(days=30)).date().isoformat())
        timings = []
        for _ in range(runs + 1):
            started = time.perf_counter()
            response = client.get(url)
            if getattr(response, "streaming", False):
                size = sum(len(chunk) for chunk in response.streaming_content)
            else:
                size = len(response.content)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        results.append((name, timings[0], statistics.median(timings[1:]), size))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reuse", action="store_true", help="keep the generated database")
    parser.add_argument("--orgs", type=int, default=100)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    url = os.environ.get("DASHBOARD_BENCH_DATABASE_URL", DEFAULT_URL)
    if not args.reuse:
        _database_reset(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings")
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]
    if not args.reuse:
        _generate(args.orgs, args.keys, args.days)
    else:  # rows generated by an older version: its migrations (0007 derives the day tables)
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        with connection.cursor() as cur:
            cur.execute("VACUUM ANALYZE billing_hourlyusageday, billing_hourlyusageorgday")
    from billing.models import HourlyUsage

    rows = HourlyUsage.objects.count()
    print(f"{rows:,} hourly roll-up rows; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    print(f"{'page':34} {'cold ms':>8} {'median ms':>10} {'bytes':>9}")
    for name, cold, median, size in _measure(args.runs):
        print(f"{name:34} {cold:8.0f} {median:10.0f} {size:9,}")


if __name__ == "__main__":
    sys.exit(main())
