"""billing 0003: each organization's monthly budget becomes a Budget row, mode kept."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("billing", "0002_count_tokens_endpoint_and_dirty_rollup_days")]
AFTER = [("billing", "0003_budget")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_it_turns_monthly_budgets_into_budget_rows():
    apps = _migrate(BEFORE)
    Organization = apps.get_model("orgs", "Organization")
    Organization.objects.create(slug="hard", name="Hard", monthly_budget_usd=Decimal("100.00"), budget_mode="hard")
    Organization.objects.create(slug="soft", name="Soft", monthly_budget_usd=Decimal("5.50"), budget_mode="alert")
    Organization.objects.create(slug="none", name="None")
    try:
        apps = _migrate(AFTER)
        Budget = apps.get_model("billing", "Budget")
        rows = {(b.organization.slug, b.api_key_id, b.period, b.amount_usd, b.mode, b.thresholds)
                for b in Budget.objects.select_related("organization")}
        assert rows == {
            ("hard", None, "month", Decimal("100.00"), "hard", "50,80,100"),
            ("soft", None, "month", Decimal("5.50"), "soft", "50,80,100"),
        }
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
