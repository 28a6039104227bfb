"""Who may see what: staff see every organization; a member sees their own organization only.

Every page resolves its organization and key through here, so a member who edits a URL or a
query parameter gets a 404, exactly as if the other organization did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import Http404

from orgs.members import member_organization
from orgs.models import ApiKey, Organization


@dataclass(frozen=True)
class Viewer:
    staff: bool
    organization: Organization | None  # a member's one organization; None for staff


def viewer_get(user) -> Viewer | None:
    """The Viewer for a logged-in user, or None if they have no dashboard access."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_staff:
        return Viewer(staff=True, organization=None)
    org = member_organization(user)
    return Viewer(staff=False, organization=org) if org else None


def member_time_zone(user) -> str:
    """A member's display time zone: their own, else their organization's, else UTC ("")."""
    membership = getattr(user, "org_membership", None)
    if membership is None:
        return ""
    return membership.time_zone or membership.organization.timezone or ""


def organization_for(viewer: Viewer, slug: str) -> Organization:
    if not viewer.staff:
        if viewer.organization is None or viewer.organization.slug != slug:
            raise Http404("No such organization.")
        return viewer.organization
    org = Organization.objects.filter(slug=slug).first()
    if org is None:
        raise Http404("No such organization.")
    return org


def key_for(organization: Organization, prefix: str) -> ApiKey:
    key = ApiKey.objects.filter(organization=organization, prefix=prefix).first()
    if key is None:
        raise Http404("No such key in this organization.")
    return key
