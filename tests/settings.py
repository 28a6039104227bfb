"""Test settings: the real settings, read from the same environment, with test-only defaults.

DATABASE_URL and REDIS_URL are honoured, so `.ci/run` runs the suite against PostgreSQL and Redis
as well as the SQLite default.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("DEBUG", "0")

from gateway_site.settings import *  # noqa: E402,F401,F403
from gateway_site.settings import DATABASES, VAR_DIR  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so the in-process gateway server's threads share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
GATEWAY_CACHE_CHECK_SECONDS = 0.0  # tests see every change at once
WHITENOISE_USE_FINDERS = True  # the dashboards' scripts straight from the apps, no collectstatic into var/
# This run's own ledger journals: a crashed earlier run's must never be replayed into these tests.
# Gateway subprocesses started by tests inherit it through the environment (and these settings).
os.environ.setdefault("BILLING_JOURNAL_DIR", str(VAR_DIR / f"journal-test-{os.getpid()}"))
BILLING_JOURNAL_DIR = os.environ["BILLING_JOURNAL_DIR"]
