"""Run as a subprocess by tests/test_budget_alerts.py: another gateway process evaluating every
budget's alerts at the same instant as the test (not a test module).

    python -m tests.alert_evaluator DB_NAME START_AT NOW_ISO

Waits until the wall clock reaches START_AT, runs the scan at NOW_ISO against the test database,
waits for its own deliveries, and prints how many alerts it created.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def main() -> None:
    db_name, start_at, now_iso = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    import django
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = db_name
    django.setup()
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True

    from billing.alerts import budget_alerts_scan
    from gateway_site import background

    while time.time() < start_at:
        time.sleep(0.001)
    created = budget_alerts_scan(now=datetime.fromisoformat(now_iso))
    background.wait_idle(30)
    print(len(created))


if __name__ == "__main__":
    main()
