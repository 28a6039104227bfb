"""The catalog models moved to the catalog app (catalog 0001): removed from ai_proxy's state
only, their tables stay and now belong to catalog."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('ai_proxy', '0002_route_allowed_options_web_search_price'),
        ('catalog', '0001_initial'),
        ('orgs', '0006_allowed_models_catalog'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.RemoveField(model_name='route', name='model'),
                migrations.RemoveField(model_name='modelalias', name='model'),
                migrations.RemoveField(model_name='route', name='provider'),
                migrations.DeleteModel(name='CatalogModel'),
                migrations.DeleteModel(name='ModelAlias'),
                migrations.DeleteModel(name='Provider'),
                migrations.DeleteModel(name='Route'),
            ],
        ),
    ]
