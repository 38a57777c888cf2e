"""Who may see and do what: one set of helpers for pages and API alike."""

from __future__ import annotations

import sqlalchemy as sa

from portal.extensions import db
from portal.models import Company, User
from portal.services.errors import NotFound, PermissionDenied


def require_role(actor: User, *roles: str) -> None:
    """Raise PermissionDenied unless the actor has one of `roles`."""
    if actor.role not in roles:
        raise PermissionDenied("Your role does not allow this.")


def is_admin(actor: User) -> bool:
    return actor.role == "platform_admin"


def company_by_slug(slug: str) -> Company:
    """The company with this slug. Raises NotFound."""
    company = db.session.execute(sa.select(Company).where(Company.slug == slug)).scalar()
    if company is None:
        raise NotFound("No such company.")
    return company


def list_companies(*, actor: User) -> list[Company]:
    """Every company, by slug (the platform admin's menu of whom to act for). Raises
    PermissionDenied."""
    if not is_admin(actor):
        raise PermissionDenied("Only platform admins list every company.")
    return list(db.session.execute(sa.select(Company).order_by(Company.slug)).scalars())


def visible_company(actor: User, slug: str) -> Company:
    """A company the actor may act for: admins any, others only their own (else 404)."""
    company = company_by_slug(slug)
    if not is_admin(actor) and company.id != actor.company_id:
        raise NotFound("No such company.")
    return company


def acting_company(actor: User, slug: str | None) -> Company:
    """The company a company-scoped action is for.

    Company admins act for their own company (naming another is a 404, as if absent);
    platform admins must name one. Raises NotFound, PermissionDenied, ValidationFailed.
    """
    from portal.services.errors import ValidationFailed

    if is_admin(actor):
        if not slug:
            raise ValidationFailed(
                "A platform admin must name the company.",
                errors=[{"pointer": "/company", "message": "is required for platform admins"}],
            )
        return company_by_slug(slug)
    if actor.role != "company_admin":
        raise PermissionDenied("Only company admins and platform admins can do this.")
    if slug and (actor.company is None or slug != actor.company.slug):
        raise NotFound("No such company.")
    return actor.company
