"""catalog 0001/0002, orgs 0006, ai_proxy 0003: the catalog models move from ai_proxy to catalog
with their rows, the organizations' and keys' allowed models, and their admin permissions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

UNDO = [("catalog", None)]  # unapplies the move and everything that depends on it
BEFORE = [("ai_proxy", "0002_route_allowed_options_web_search_price"),
          ("orgs", "0005_organization_limits_budget_fields_removed"),
          ("contenttypes", "0002_remove_content_type_name"), ("auth", "0012_alter_user_first_name_max_length")]
AFTER = [("catalog", "0002_content_types")]


def _migrate(targets, state_at=None):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(state_at or targets).apps


def _leaves():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def test_it_keeps_every_catalog_row_and_the_allowed_models():
    apps = _migrate(UNDO, state_at=BEFORE)
    Provider = apps.get_model("ai_proxy", "Provider")
    CatalogModel = apps.get_model("ai_proxy", "CatalogModel")
    provider = Provider.objects.create(name="acme", kind="openai", base_url="https://acme.test/v1")
    model = CatalogModel.objects.create(
        public_id="acme-1", display_name="Acme 1", provider_label="Acme",
        input_price_per_mtok=Decimal("1.25"), output_price_per_mtok=Decimal("5"),
    )
    apps.get_model("ai_proxy", "ModelAlias").objects.create(model=model, alias="acme-1-2026")
    apps.get_model("ai_proxy", "Route").objects.create(
        model=model, provider=provider, upstream_model="acme-one", priority=2, allowed_options="service_tier:flex"
    )
    org = apps.get_model("orgs", "Organization").objects.create(slug="alice", name="Alice")
    org.allowed_models.add(model)
    apps.get_model("orgs", "AuditLog").objects.create(
        actor_label="cli", action="create", object_type="ai_proxy.Provider", object_id=str(provider.pk),
        object_repr="acme")
    try:
        apps = _migrate(AFTER)
        CatalogModel = apps.get_model("catalog", "CatalogModel")
        moved = CatalogModel.objects.get(public_id="acme-1")
        assert (moved.pk, moved.input_price_per_mtok, moved.output_price_per_mtok) == (
            model.pk, Decimal("1.25"), Decimal("5.000000"))
        assert [a.alias for a in apps.get_model("catalog", "ModelAlias").objects.filter(model=moved)] == ["acme-1-2026"]
        [route] = apps.get_model("catalog", "Route").objects.select_related("provider")
        assert (route.model_id, route.provider.name, route.upstream_model, route.priority, route.allowed_options) == (
            moved.pk, "acme", "acme-one", 2, "service_tier:flex")
        org = apps.get_model("orgs", "Organization").objects.get(slug="alice")
        assert [m.public_id for m in org.allowed_models.all()] == ["acme-1"]
        audit = apps.get_model("orgs", "AuditLog").objects.get(object_id=str(provider.pk))
        assert audit.object_type == "catalog.Provider"
        with connection.cursor() as cursor:
            tables = set(connection.introspection.table_names(cursor))
        assert {"ai_proxy_provider", "ai_proxy_catalogmodel", "ai_proxy_modelalias", "ai_proxy_route"} <= tables
    finally:
        _migrate(_leaves())


def test_it_moves_the_content_types_so_permissions_survive():
    apps = _migrate(UNDO, state_at=BEFORE)
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    User = apps.get_model("auth", "User")
    # Unapplying catalog 0002 gave the content types back to ai_proxy, as before the move.
    assert not ContentType.objects.filter(app_label="catalog").exists()
    content_type = ContentType.objects.get(app_label="ai_proxy", model="catalogmodel")
    permission = Permission.objects.get(content_type=content_type, codename="change_catalogmodel")
    bob = User.objects.create(username="bob", is_staff=True)
    bob.user_permissions.add(permission)
    try:
        apps = _migrate(AFTER)
        ContentType = apps.get_model("contenttypes", "ContentType")
        assert not ContentType.objects.filter(app_label="ai_proxy").exists()
        moved = ContentType.objects.get(app_label="catalog", model="catalogmodel")
        assert moved.pk == content_type.pk
        _migrate(_leaves())
        from django.contrib.auth.models import User as LiveUser

        assert LiveUser.objects.get(username="bob").has_perm("catalog.change_catalogmodel")
    finally:
        _migrate(_leaves())
