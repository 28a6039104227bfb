"""Malformed settings stop start-up with a message naming the variable.

Each case starts a fresh interpreter on a copy of gateway_site/ in a temporary directory, so the
real var/env (written by `make run`, absent on CI) can neither help nor hurt: settings read
<copy>/var/env, which exists only when a test writes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SETUP = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='gateway_site.settings'; django.setup()"
GOOD = {"SECRET_KEY": "settings-test-secret", "DEBUG": "0"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "gateway_site", tmp_path / "gateway_site", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def start(project: Path, env: dict[str, str], code: str = SETUP) -> subprocess.CompletedProcess:
    # Only what the interpreter needs: no DATABASE_URL, REDIS_URL or SECRET_KEY from the parent.
    base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "HOME": str(project)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=project, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_it_starts_with_good_settings(project):
    result = start(project, GOOD, SETUP + "; from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.db.backends.sqlite3"


@pytest.mark.parametrize(
    "name, value",
    [
        ("DATABASE_URL", "nonsense://"),
        ("DATABASE_URL", "postgres://user@host:notaport/db"),
        ("DEBUG", "maybe"),
        ("REDIS_URL", "http://x"),
        ("GATEWAY_CACHE_CHECK_SECONDS", "soon"),
        ("GATEWAY_ROTATION_GRACE_HOURS", "a day"),
        ("GATEWAY_MAX_BODY_BYTES", "20MB"),
        ("GATEWAY_BUDGET_FAIL_OPEN", "sometimes"),
        ("DB_CONN_MAX_AGE", "forever"),
        ("GATEWAY_DRAIN_SECONDS", "2m"),
        ("GATEWAY_DRAIN_SECONDS", "0"),
        ("BILLING_INFLIGHT_TTL_SECONDS", "half a minute"),
        ("BILLING_INFLIGHT_TTL_SECONDS", "0"),
    ],
)
def test_it_refuses_a_malformed_variable_and_names_it(project, name, value):
    env = {**GOOD, name: value}
    if name == "DB_CONN_MAX_AGE":
        env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/gateway"

    result = start(project, env)

    assert result.returncode != 0
    assert name in result.stderr.strip().splitlines()[-1], result.stderr


def test_it_requires_a_secret_key_when_debug_is_off(project):
    result = start(project, {"DEBUG": "0"})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr.strip().splitlines()[-1]


def test_it_runs_without_a_secret_key_in_debug(project):
    assert start(project, {"DEBUG": "1"}).returncode == 0


def test_it_reads_var_env_and_lets_the_environment_win(project):
    (project / "var").mkdir()
    (project / "var" / "env").write_text("SECRET_KEY=from-the-file\nGATEWAY_ROTATION_GRACE_HOURS=2\n")
    show = SETUP + "; from django.conf import settings as s; print(s.SECRET_KEY, s.GATEWAY_ROTATION_GRACE_HOURS)"

    assert start(project, {"DEBUG": "0"}, show).stdout.split() == ["from-the-file", "2.0"]
    assert start(project, {"DEBUG": "0", "SECRET_KEY": "from-env"}, show).stdout.split() == ["from-env", "2.0"]


SHOW_DEFAULTS = SETUP + (
    "; from django.conf import settings as s"
    "; print(s.DATABASES['default']['NAME'])"
    "; print(s.CACHES['default']['BACKEND'])"
    "; print(s.CELERY_TASK_ALWAYS_EAGER)"
    "; print(s.SECRET_KEY)"
)


def test_it_defaults_to_sqlite_local_memory_and_eager_celery(project):
    result = start(project, GOOD, SHOW_DEFAULTS)

    assert result.returncode == 0, result.stderr
    name, cache, eager, secret = result.stdout.split()
    assert name == str(project / "var" / "gateway.sqlite3")
    assert cache == "django.core.cache.backends.locmem.LocMemCache"
    assert eager == "True"
    assert secret == "settings-test-secret"


def test_it_uses_redis_and_a_real_celery_broker_with_redis_url(project):
    result = start(project, {**GOOD, "REDIS_URL": "redis://127.0.0.1:6379/0"},
                   SHOW_DEFAULTS + "; print(s.CACHES['default']['LOCATION'], s.CELERY_BROKER_URL)")

    assert result.returncode == 0, result.stderr
    _, cache, eager, _, location, broker = result.stdout.split()
    assert cache == "django.core.cache.backends.redis.RedisCache"
    assert eager == "False"
    assert location == broker == "redis://127.0.0.1:6379/0"


def test_it_gives_debug_a_development_secret_key(project):
    result = start(project, {"DEBUG": "1"}, SHOW_DEFAULTS)

    assert result.returncode == 0, result.stderr
    secret = result.stdout.split()[-1]
    assert secret and "dev" in secret


DEPLOY_CHECK = SETUP + (
    "; from django.core.management import call_command"
    "; call_command('check', deploy=True, fail_level='WARNING')"
)
STRONG = {"SECRET_KEY": "k7Qz-" + "".join(chr(65 + (i * 7) % 26) for i in range(60)), "DEBUG": "0",
          "ALLOWED_HOSTS": "gateway.example.com"}


def test_the_deploy_check_is_clean_behind_https(project):
    result = start(project, {**STRONG, "GATEWAY_HTTPS": "1"}, DEPLOY_CHECK)

    assert result.returncode == 0, result.stderr
    assert "WARNINGS" not in result.stderr + result.stdout


def test_the_deploy_check_still_warns_without_https(project):
    # GATEWAY_HTTPS is what turns the HTTPS settings on: without it the check must not pass.
    result = start(project, STRONG, DEPLOY_CHECK)

    assert result.returncode != 0
    assert "security.W004" in result.stderr  # no HSTS


def test_celery_beat_keeps_its_schedule_under_var(project):
    show = SETUP + (
        "; from celery.beat import Service; from gateway_site.celery import app"
        "; print(Service(app=app).schedule_filename)"
    )
    result = start(project, GOOD, show)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(project / "var" / "celerybeat-schedule")
