from django.db import migrations, models


class Migration(migrations.Migration):
    """Organization RPM/TPM limits; the monthly budget fields go (billing 0003 copied them into
    Budget rows, and reverses that copy when unapplied)."""

    dependencies = [
        ("orgs", "0003_organization_timezone"),
        ("billing", "0003_budget"),
    ]

    operations = [
        migrations.AddField(
            model_name="organization",
            name="rpm_limit",
            field=models.PositiveIntegerField(blank=True, help_text="Requests per minute, all keys together.", null=True),
        ),
        migrations.AddField(
            model_name="organization",
            name="tpm_limit",
            field=models.PositiveIntegerField(blank=True, help_text="Tokens per minute, all keys together.", null=True),
        ),
        migrations.RemoveField(model_name="organization", name="monthly_budget_usd"),
        migrations.RemoveField(model_name="organization", name="budget_mode"),
    ]
