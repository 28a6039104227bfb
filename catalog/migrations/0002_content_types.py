"""Admin permissions, group grants and admin log entries hang off the content type; renaming the
ai_proxy ones to catalog keeps them attached to the moved models."""

from django.db import migrations

MODELS = ("provider", "catalogmodel", "modelalias", "route")


def _relabel(apps, old: str, new: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        # A database migrated from zero has no rows yet (post_migrate creates them under the new
        # label); one that somehow has both keeps the old row, which the permissions point at.
        if ContentType.objects.filter(app_label=old, model=model).exists():
            ContentType.objects.filter(app_label=new, model=model).delete()
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)


def forwards(apps, schema_editor) -> None:
    _relabel(apps, "ai_proxy", "catalog")


def backwards(apps, schema_editor) -> None:
    _relabel(apps, "catalog", "ai_proxy")


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0001_initial"),
        ("ai_proxy", "0003_catalog_moved"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
