"""Dashboard access: organization members (people who see one organization) and staff tokens
(bearer tokens for the staff usage API). Writes leave audit rows, as every change here does."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .models import Organization, OrganizationMember, StaffToken
from .services import audit_record

_ALPHABET = string.ascii_letters + string.digits
STAFF_TOKEN_PREFIX = "dms_"
_SECRET_LENGTH = 40
_PREFIX_CHARS = 8


@transaction.atomic
def organization_member_add(
    *, organization: Organization, username: str, password: str | None, actor: AbstractBaseUser | str | None,
    time_zone: str = "",
) -> OrganizationMember:
    """Give `username` dashboard access to `organization`, creating the user if needed.

    A staff user is refused: staff already see every organization, and a membership would not
    narrow that. A user already member of another organization is moved, never doubled.
    """
    User = get_user_model()
    user, created = User.objects.get_or_create(username=username)
    if user.is_staff or user.is_superuser:
        raise ValidationError(f"{username} is staff; staff see every organization already.")
    if password:
        user.set_password(password)
        user.save(update_fields=["password"])
    elif created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    member, _ = OrganizationMember.objects.update_or_create(
        user=user, defaults={"organization": organization, "time_zone": time_zone}
    )
    audit_record(actor=actor, action="member_add", obj=member, organization=organization,
                 changes={"user": username, "created_user": created})
    return member


def member_organization(user) -> Organization | None:
    """The one organization a non-staff user may see, or None."""
    if not getattr(user, "is_authenticated", False):
        return None
    member = OrganizationMember.objects.select_related("organization").filter(user=user).first()
    return member.organization if member else None


@dataclass(frozen=True)
class NewStaffToken:
    token: StaffToken
    plaintext: str


def _hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


@transaction.atomic
def staff_token_issue(*, user: AbstractBaseUser, label: str = "", actor: AbstractBaseUser | str | None) -> NewStaffToken:
    if not user.is_staff:
        raise ValidationError(f"{user.get_username()} is not staff; staff tokens are for staff users.")
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_LENGTH))
    plaintext = STAFF_TOKEN_PREFIX + secret
    token = StaffToken.objects.create(
        user=user, label=label, prefix=STAFF_TOKEN_PREFIX + secret[:_PREFIX_CHARS], key_hash=_hash(plaintext)
    )
    audit_record(actor=actor, action="staff_token_issue", obj=token, changes={"user": user.get_username()})
    return NewStaffToken(token=token, plaintext=plaintext)


def staff_token_user(plaintext: str):
    """The active staff user a presented token acts as, or None."""
    if not plaintext.startswith(STAFF_TOKEN_PREFIX) or len(plaintext) != len(STAFF_TOKEN_PREFIX) + _SECRET_LENGTH:
        return None
    prefix = plaintext[: len(STAFF_TOKEN_PREFIX) + _PREFIX_CHARS]
    token = StaffToken.objects.select_related("user").filter(prefix=prefix, revoked_at__isnull=True).first()
    if token is None or not hmac.compare_digest(_hash(plaintext), token.key_hash):
        return None
    if not (token.user.is_active and token.user.is_staff):
        return None
    StaffToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user
