"""CacheVersion moved to core (core 0001): removed from orgs' state only; its table stays."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0001_initial'),
        ('orgs', '0006_allowed_models_catalog'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[migrations.DeleteModel(name='CacheVersion')],
        ),
    ]
