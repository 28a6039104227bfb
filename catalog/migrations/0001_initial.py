"""The catalog's models, moved here from ai_proxy without touching their tables.

State only: the tables (ai_proxy_provider, ai_proxy_catalogmodel, ai_proxy_modelalias,
ai_proxy_route) were created by ai_proxy 0001/0002 and keep their names (Meta.db_table), so the
rows stay where they are. ai_proxy 0003 removes the models from ai_proxy's state after orgs 0006
has pointed its many-to-many fields here; catalog 0002 moves the content types.
"""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from decimal import Decimal
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('ai_proxy', '0002_route_allowed_options_web_search_price'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='CatalogModel',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('public_id', models.CharField(max_length=100, unique=True, validators=[django.core.validators.RegexValidator('^[a-zA-Z0-9][a-zA-Z0-9._:-]*$', 'A model id.')])),
                        ('display_name', models.CharField(max_length=200)),
                        ('provider_label', models.CharField(help_text='Who makes it (Anthropic, OpenAI, xAI, ...).', max_length=60)),
                        ('best_for', models.CharField(blank=True, max_length=300)),
                        ('speed_tier', models.CharField(choices=[('fastest', 'Fastest'), ('fast', 'Fast'), ('medium', 'Medium'), ('slow', 'Slow')], default='medium', max_length=10)),
                        ('cost_tier', models.CharField(choices=[('free', 'Free'), ('low', 'Low'), ('medium', 'Medium'), ('high', 'High'), ('premium', 'Premium')], default='medium', max_length=10)),
                        ('input_price_per_mtok', models.DecimalField(blank=True, decimal_places=6, max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0'))])),
                        ('output_price_per_mtok', models.DecimalField(blank=True, decimal_places=6, max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0'))])),
                        ('cache_read_price_per_mtok', models.DecimalField(blank=True, decimal_places=6, max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0'))])),
                        ('cache_write_price_per_mtok', models.DecimalField(blank=True, decimal_places=6, max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0'))])),
                        ('web_search_price_per_1k', models.DecimalField(blank=True, decimal_places=6, help_text='USD per 1,000 web searches; required before a route may allow web search.', max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0'))])),
                        ('price_source', models.CharField(blank=True, help_text='Where and when the prices were taken.', max_length=300)),
                        ('max_output_tokens', models.PositiveIntegerField(default=4096)),
                        ('context_window', models.PositiveIntegerField(default=128000)),
                        ('enabled', models.BooleanField(default=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'verbose_name': 'catalog model',
                        'db_table': 'ai_proxy_catalogmodel',
                        'ordering': ['public_id'],
                    },
                ),
                migrations.CreateModel(
                    name='Provider',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=60, unique=True, validators=[django.core.validators.RegexValidator('^[a-z0-9][a-z0-9_-]*$', 'Lowercase name.')])),
                        ('kind', models.CharField(choices=[('openai', 'OpenAI-compatible (Chat Completions)'), ('anthropic', 'Anthropic Messages'), ('mock', 'Mock (offline, deterministic)')], max_length=20)),
                        ('base_url', models.URLField(blank=True, help_text='openai: the URL /chat/completions is appended to (https://api.openai.com/v1); anthropic: the one /v1/messages is appended to (https://api.anthropic.com).')),
                        ('api_key_env', models.CharField(blank=True, max_length=100, validators=[django.core.validators.RegexValidator('^[A-Z_][A-Z0-9_]*$', 'An environment variable name.')])),
                        ('connect_timeout_seconds', models.FloatField(default=5.0, validators=[django.core.validators.MinValueValidator(0.1)])),
                        ('timeout_seconds', models.FloatField(default=600.0, help_text='Read timeout between bytes.', validators=[django.core.validators.MinValueValidator(0.1)])),
                        ('enabled', models.BooleanField(default=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'db_table': 'ai_proxy_provider',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='ModelAlias',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('alias', models.CharField(max_length=100, unique=True)),
                        ('model', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='aliases', to='catalog.catalogmodel')),
                    ],
                    options={
                        'verbose_name_plural': 'model aliases',
                        'db_table': 'ai_proxy_modelalias',
                        'ordering': ['alias'],
                    },
                ),
                migrations.CreateModel(
                    name='Route',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('upstream_model', models.CharField(max_length=200)),
                        ('weight', models.PositiveIntegerField(default=100)),
                        ('priority', models.PositiveIntegerField(default=0, help_text='Lower is tried first.')),
                        ('enabled', models.BooleanField(default=True)),
                        ('drop_unsupported_params', models.BooleanField(default=False, help_text="Silently drop request parameters the provider's format has no equivalent for (otherwise the request is refused with a 400 naming them).")),
                        ('allowed_options', models.TextField(blank=True, help_text="Price-changing client options this route accepts, separated by spaces, commas or new lines: anthropic-beta:<value> (native Anthropic routes only; prompt-caching-2024-07-31 is always allowed), service_tier:<value> (OpenAI-format routes; billed at this model's prices, so give priority its own catalog model), server_tool:web_search and web_search_options (billed per search at the model's web search price), server_tool:web_fetch, inference_geo:<value>, speed:<value>, cache_ttl:1h.")),
                        ('model', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='routes', to='catalog.catalogmodel')),
                        ('provider', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='routes', to='catalog.provider')),
                    ],
                    options={
                        'db_table': 'ai_proxy_route',
                        'ordering': ['model', 'priority', '-weight', 'id'],
                        'constraints': [models.UniqueConstraint(fields=('model', 'provider', 'upstream_model'), name='route_unique_per_provider')],
                    },
                ),
    
            ],
        ),
    ]
