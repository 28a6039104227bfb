"""Changes made by another process reach a running production server within about a second:
in the embedded default (no Redis) and after Redis lost its data."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
import redis as redis_client

from tests.fake_fixtures import point_catalog_at
from tests.server_helpers import REDIS_SERVER, free_port, manage, poll, process_env, process_stop, redis_start, serve_start

pytestmark = pytest.mark.django_db(transaction=True)

# The production settings (GATEWAY_CACHE_CHECK_SECONDS at its documented 1 s), not the tests'.
PRODUCTION = {"DJANGO_SETTINGS_MODULE": "gateway_site.settings"}
# One cache check interval, plus a new process's start-up and the slack of a busy test machine.
WITHIN = 3.0


def _status(url: str, key: str, model: str = "mock-echo") -> int:
    client = openai.OpenAI(base_url=f"{url}/api/ai", api_key=key, max_retries=0, timeout=10)
    response = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hello"}])
    return response.status_code


def _status_or_error(url: str, key: str, model: str = "mock-echo") -> int:
    try:
        return _status(url, key, model)
    except openai.APIStatusError as exc:
        return exc.status_code


@pytest.fixture
def embedded(fake_provider, monkeypatch, alice_key):
    """The embedded default as shipped: no REDIS_URL, one `serve` process."""
    point_catalog_at(fake_provider.url, monkeypatch)
    env = process_env(REDIS_URL="", **PRODUCTION)
    url, proc = serve_start(env)
    yield url, env, alice_key
    process_stop(proc)


def test_a_key_revoked_by_another_process_is_refused_within_a_second(embedded):
    from orgs.keys import key_prefix_of

    url, env, key = embedded
    assert _status(url, key) == 200
    assert _status(url, key) == 200  # now served from the server's key cache

    manage("revoke_key", key_prefix_of(key), env=env)

    assert poll(lambda: _status_or_error(url, key) == 401, timeout=WITHIN), "the revoked key still works"
    with pytest.raises(openai.AuthenticationError) as exc:
        _status(url, key)
    assert exc.value.response.json()["error"]["message"] == "This API key has been revoked."


def test_a_provider_disabled_by_another_process_stops_serving_within_a_second(embedded):
    url, env, key = embedded
    assert _status(url, key) == 200

    manage("set_provider", "mock", "--disable", env=env)

    assert poll(lambda: _status_or_error(url, key) == 503, timeout=WITHIN), "the disabled provider still serves"
    with pytest.raises(openai.InternalServerError) as exc:
        _status(url, key)
    assert exc.value.code == "no_route_available"


@pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="needs a redis-server binary")
def test_a_redis_that_lost_its_data_cannot_bring_back_a_revoked_key(fake_provider, monkeypatch, alice_org, settings):
    from orgs.selectors import key_cache
    from orgs.services import api_key_issue, api_key_revoke

    point_catalog_at(fake_provider.url, monkeypatch)
    redis_port = free_port()
    redis = redis_start(redis_port)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    settings.REDIS_URL = redis_url  # this process writes to the same shared state as the server
    # One worker, so the process that cached the key is the one asked again.
    url, proc = serve_start(process_env(REDIS_URL=redis_url, **PRODUCTION), workers=1)
    try:
        issued = api_key_issue(organization=alice_org, label="to revoke", actor="test")
        for _ in range(3):  # some changes since Redis started
            key_cache.invalidate()
        assert _status(url, issued.plaintext) == 200  # cached by the server under today's version
        store = redis_client.Redis.from_url(redis_url)
        cached_under = store.get("gw:version:keys")  # a counter's value, if versions were counters

        store.flushdb()  # Redis restarted without its data
        api_key_revoke(api_key=issued.api_key, actor="test")
        # Enough changes since for a counter to be back at the value the key was cached under.
        for _ in range(20):
            if store.get("gw:version:keys") == cached_under:
                break
            key_cache.invalidate()

        assert poll(lambda: _status_or_error(url, issued.plaintext) == 401, timeout=WITHIN), \
            "the revoked key is accepted again"
    finally:
        process_stop(proc)
        redis.kill()
        redis.wait()

