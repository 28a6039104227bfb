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


def test_the_old_fields_go_and_come_back_when_unapplied():
    """orgs 0005 removes monthly_budget_usd/budget_mode (their Budget rows stay); unapplying it and
    billing 0003 puts the figures back on the organization."""
    apps = _migrate(BEFORE)
    Organization = apps.get_model("orgs", "Organization")
    Organization.objects.create(slug="hard", name="Hard", monthly_budget_usd=Decimal("100.00"), budget_mode="hard")
    try:
        leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
        apps = _migrate(leaves)
        Organization = apps.get_model("orgs", "Organization")
        fields = {f.name for f in Organization._meta.get_fields()}
        assert "monthly_budget_usd" not in fields and "budget_mode" not in fields
        assert {"rpm_limit", "tpm_limit"} <= fields
        with connection.cursor() as cursor:
            columns = {c.name for c in connection.introspection.get_table_description(cursor, "orgs_organization")}
        assert "monthly_budget_usd" not in columns
        [budget] = apps.get_model("billing", "Budget").objects.all()
        assert (budget.amount_usd, budget.period, budget.mode) == (Decimal("100.00"), "month", "hard")

        apps = _migrate(BEFORE)
        org = apps.get_model("orgs", "Organization").objects.get(slug="hard")
        assert (org.monthly_budget_usd, org.budget_mode) == (Decimal("100.00"), "hard")
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
