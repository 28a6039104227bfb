from django.db import migrations, models


class Migration(migrations.Migration):
    """Organization RPM/TPM limits; the monthly budget fields go (billing 0003 copied them into
    Budget rows, and reverses that copy when unapplied)."""

    dependencies = [
        ("orgs", "0004_organization_member_staff_token"),
        # After the latest billing migration, not just 0003 (which copied the fields into Budget rows): a
        # migration test that goes back to any billing state then gets the fields back as well.
        ("billing", "0006_hourly_usage"),
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
