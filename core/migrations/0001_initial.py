"""CacheVersion moves here from orgs without touching its table (orgs_cacheversion, created by
orgs 0002): state only. orgs 0007 removes it from orgs' state. The content type follows it, so
admin permissions stay attached."""

from django.db import migrations, models
import django.utils.timezone


def _relabel(apps, old: str, new: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    if ContentType.objects.filter(app_label=old, model="cacheversion").exists():
        ContentType.objects.filter(app_label=new, model="cacheversion").delete()
        ContentType.objects.filter(app_label=old, model="cacheversion").update(app_label=new)


def forwards(apps, schema_editor) -> None:
    _relabel(apps, "orgs", "core")


def backwards(apps, schema_editor) -> None:
    _relabel(apps, "core", "orgs")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('orgs', '0002_cache_version'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='CacheVersion',
                    fields=[
                        ('name', models.CharField(max_length=40, primary_key=True, serialize=False)),
                        ('token', models.CharField(max_length=32)),
                        ('changed_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ],
                    options={
                        'db_table': 'orgs_cacheversion',
                    },
                ),
            ],
        ),
        migrations.RunPython(forwards, backwards),
    ]
