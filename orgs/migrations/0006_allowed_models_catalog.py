"""The allowed-models fields follow CatalogModel to the catalog app: state only, the join tables
and their foreign keys to ai_proxy_catalogmodel are unchanged (the table kept its name).

Audit rows name the changed object by its model label; the old rows are relabelled so one filter
(`object_type="catalog.Provider"`) finds a provider's whole history.
"""

from django.db import migrations, models

MOVED = ("Provider", "CatalogModel", "ModelAlias", "Route")


def _relabel(apps, old: str, new: str) -> None:
    AuditLog = apps.get_model("orgs", "AuditLog")
    for name in MOVED:
        AuditLog.objects.filter(object_type=f"{old}.{name}").update(object_type=f"{new}.{name}")


def forwards(apps, schema_editor) -> None:
    _relabel(apps, "ai_proxy", "catalog")


def backwards(apps, schema_editor) -> None:
    _relabel(apps, "catalog", "ai_proxy")


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0001_initial'),
        ('orgs', '0005_organization_limits_budget_fields_removed'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name='apikey',
                    name='allowed_models',
                    field=models.ManyToManyField(blank=True, help_text="Empty means all the organization's models.", related_name='+', to='catalog.catalogmodel'),
                ),
                migrations.AlterField(
                    model_name='organization',
                    name='allowed_models',
                    field=models.ManyToManyField(blank=True, help_text='Empty means every enabled model.', related_name='+', to='catalog.catalogmodel'),
                ),
            ],
        ),
        migrations.RunPython(forwards, backwards),
    ]
