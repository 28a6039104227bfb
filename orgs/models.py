from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

# Slugs appear inside keys (dm_<slug>_<env>_<secret>), so no underscores.
slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$",
    "Use 1-40 lowercase letters, digits and hyphens (no underscores: the slug is part of API keys).",
)
hostname_validator = RegexValidator(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
    "Enter a lowercase hostname such as api.example.com.",
)


def timezone_validate(value: str) -> None:
    from django.core.exceptions import ValidationError

    from core.time_zones import zone

    try:
        zone(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class Organization(models.Model):
    slug = models.CharField(max_length=40, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    alert_emails = models.TextField(blank=True, help_text="Comma-separated addresses for budget alerts.")
    alert_webhook_url = models.URLField(blank=True)
    allowed_models = models.ManyToManyField(
        "catalog.CatalogModel", blank=True, related_name="+", help_text="Empty means every enabled model."
    )
    # Limits on the whole organization, across all its keys (each key may have tighter ones).
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute, all keys together.")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute, all keys together.")
    store_content = models.BooleanField(
        default=False, help_text="Keep prompt and completion text in the usage ledger (off by default)."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Budget periods (days, weeks, months) start at local midnight in this zone. Declared after
    # the fields above: in the class body this name hides django.utils.timezone. A database
    # default too, so code that predates the column (a rolling deploy) can still insert rows.
    timezone = models.CharField(
        max_length=64, blank=True, default="", db_default="", validators=[timezone_validate],
        help_text="IANA time zone for budget periods, e.g. Europe/Berlin; empty means UTC.",
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    @property
    def alert_email_list(self) -> list[str]:
        return [e.strip() for e in self.alert_emails.split(",") if e.strip()]


class VanityDomain(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="domains")
    hostname = models.CharField(max_length=253, unique=True, validators=[hostname_validator])
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname

    def save(self, *args, **kwargs) -> None:
        self.hostname = self.hostname.strip().lower()
        super().save(*args, **kwargs)


class ApiKey(models.Model):
    class Environment(models.TextChoices):
        PROD = "prod", "Production"
        STAGING = "staging", "Staging"
        DEV = "dev", "Development"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    label = models.CharField(max_length=200, blank=True)
    environment = models.CharField(max_length=10, choices=Environment.choices, default=Environment.PROD)
    # The visible start of the key (dm_<org>_<env>_ plus 8 secret characters): how operators
    # and logs name a key without holding it.
    prefix = models.CharField(max_length=80, unique=True, editable=False)
    # SHA-256 of the whole key. Keys carry 238 bits of randomness, so a fast hash is enough:
    # there is nothing to brute-force.
    key_hash = models.CharField(max_length=64, editable=False)
    last_four = models.CharField(max_length=4, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    rotated_from = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rotated_to"
    )
    allowed_models = models.ManyToManyField(
        "catalog.CatalogModel", blank=True, related_name="+", help_text="Empty means all the organization's models."
    )
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute.")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute.")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}…{self.last_four}"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or self.expires_at > now

    @property
    def status(self) -> str:
        now = timezone.now()
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.expires_at is not None and hasattr(self, "rotated_to"):
            return "rotating"
        return "active"


class AuditLog(models.Model):
    """Who changed what and when; written in the same transaction as the change."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Kept as text too, so the row still says who after the user is deleted ("cli" for commands).
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=40)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=300)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_type} {self.object_repr}"



class OrganizationMember(models.Model):
    """A person with dashboard access to one organization: a Django user who is not staff.

    They log in at /accounts/login/ and see that organization's dashboard only, never the admin
    (services.organization_member_add refuses staff users, and the dashboard checks membership
    on every page, not just the landing one).
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="org_membership")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="members")
    # IANA name the dashboard shows days in; empty is UTC. Totals do not depend on it.
    time_zone = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["organization", "user__username"]
        verbose_name = "organization member"

    def __str__(self) -> str:
        return f"{self.user} → {self.organization.slug}"


class StaffToken(models.Model):
    """A bearer token for the staff usage API (GET /api/ai/admin/usage), held by a staff user.

    Shaped like API keys (visible prefix, only a SHA-256 stored, shown once), but a separate kind
    (dms_...) that the proxy never accepts, so a reporting script cannot spend money. It acts as
    its user: it stops working when the user stops being staff or active, or is revoked.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_tokens")
    label = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=20, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"
