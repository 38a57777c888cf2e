"""Who may see and do what: one set of helpers for pages and API alike.

The `may_*` predicates are the services' rules. The `sees_*` ones follow the spec's page
table, which is narrower in two places: a platform admin may publish (through the API) yet
has no Publish page, and may install for any company yet sees no Install button on a
module's page (they install from a company's installations page instead)."""

from __future__ import annotations

import sqlalchemy as sa

from portal.extensions import db
from portal.models import Company, ReleaseStatus, Role, User
from portal.services.errors import NotFound, PermissionDenied


def is_admin(actor: User) -> bool:
    """A platform admin: sees and may do everything."""
    return actor.role == Role.PLATFORM_ADMIN


def is_company_admin(actor: User) -> bool:
    return actor.role == Role.COMPANY_ADMIN


def may_publish(actor: User) -> bool:
    """Publish, resubmit and check releases: developers (for their company) and admins."""
    return actor.role in (Role.DEVELOPER, Role.PLATFORM_ADMIN)


def may_install(actor: User) -> bool:
    """Install and manage installations: company admins (their company) and admins (any)."""
    return actor.role in (Role.COMPANY_ADMIN, Role.PLATFORM_ADMIN)


def may_review(actor: User) -> bool:
    """Decide on pending releases and read the review queue: platform admins."""
    return is_admin(actor)


def sees_activity_page(actor: User) -> bool:
    """The Activity page: platform admins (every event), company admins (their company's)."""
    return actor.role in (Role.PLATFORM_ADMIN, Role.COMPANY_ADMIN)


def sees_publish_page(actor: User) -> bool:
    """The Publish page is the developers' (spec page table)."""
    return actor.role == Role.DEVELOPER


def sees_installations_page(actor: User) -> bool:
    """The top bar's Installations link: company admins, for their own company."""
    return is_company_admin(actor)


def sees_install_button(actor: User, release) -> bool:
    """A module page offers Install to company admins, for an approved release."""
    return is_company_admin(actor) and release.status == ReleaseStatus.APPROVED


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
    if not is_company_admin(actor):
        raise PermissionDenied("Only company admins and platform admins can do this.")
    if slug and (actor.company is None or slug != actor.company.slug):
        raise NotFound("No such company.")
    return actor.company
