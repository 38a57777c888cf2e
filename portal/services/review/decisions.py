"""Review decisions: a release's status moves by approval, rejection or deprecation
(product.md). (What happens to an installation over time is services/installations/lifecycle.)

Every transition is a conditional UPDATE on the status it starts from, so when two admins
decide the same release at once exactly one wins and the other gets a Conflict (409), on
PostgreSQL and SQLite alike (no reliance on FOR UPDATE).
"""

from __future__ import annotations

import sqlalchemy as sa

from portal import events
from portal.extensions import db
from portal.models import Company, ModuleRelease, ReleaseStatus, StatusChange, User
from portal.models.base import utcnow
from portal.services.accounts.access import is_admin, may_review
from portal.services.catalog import queries as catalog
from portal.services.catalog.latest import refresh_latest
from portal.services.errors import Conflict, PermissionDenied, ValidationFailed
from portal.services.paging import Page, paginate
from portal.services.uow import unit_of_work

# target status → (statuses it may come from, event type)
TRANSITIONS = {
    ReleaseStatus.APPROVED: ((ReleaseStatus.PENDING,), events.MODULE_APPROVED),
    ReleaseStatus.REJECTED: ((ReleaseStatus.PENDING,), events.MODULE_REJECTED),
    ReleaseStatus.DEPRECATED: ((ReleaseStatus.APPROVED,), events.MODULE_DEPRECATED),
}
DECISIONS = tuple(TRANSITIONS)


def _check_actor(release: ModuleRelease, status: str, actor: User) -> None:
    if status in (ReleaseStatus.APPROVED, ReleaseStatus.REJECTED):
        if not may_review(actor):
            raise PermissionDenied("Only platform admins approve or reject releases.")
        if release.owner_id == actor.id:
            raise PermissionDenied("Nobody decides on a release they uploaded themselves.")
    elif not (is_admin(actor) or release.publisher_id == actor.company_id):
        raise PermissionDenied("Only the publisher or a platform admin can deprecate it.")


def change_status(
    release_id: int, status: str, reason: str | None = None, *, actor: User
) -> ModuleRelease:
    """Move a release to `status`. Raises NotFound, PermissionDenied, ValidationFailed
    (unknown status, rejection without a reason), Conflict (not allowed from the current
    status, or someone else decided first)."""
    if status not in DECISIONS:
        raise ValidationFailed(
            "Unknown status.",
            errors=[{"pointer": "/status", "message": f"must be one of {', '.join(DECISIONS)}"}],
        )
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > 2000:
        raise ValidationFailed(
            "The reason is too long.",
            errors=[{"pointer": "/reason", "message": "at most 2000 characters"}],
        )
    if status == ReleaseStatus.REJECTED and reason is None:
        raise ValidationFailed(
            "A rejection needs a reason.",
            errors=[{"pointer": "/reason", "message": "say what the publisher must fix"}],
        )
    release = catalog.get_release(release_id, actor=actor)
    _check_actor(release, status, actor)
    sources, event_type = TRANSITIONS[status]
    if release.status not in sources:
        raise Conflict(f"A {release.status} release cannot become {status}.")
    with unit_of_work():
        won = db.session.execute(
            sa.update(ModuleRelease)
            .where(ModuleRelease.id == release_id, ModuleRelease.status.in_(sources))
            .values(status=status, status_reason=reason, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        if won != 1:
            raise Conflict("Someone else changed this release's status first.")
        previous = sources[0]  # the one status this transition starts from
        db.session.add(
            StatusChange(
                module_id=release_id,
                from_status=previous,
                to_status=status,
                actor_id=actor.id,
                reason=reason,
            )
        )
        db.session.refresh(release)
        refresh_latest(release.name)
        data = {"from": previous, "to": status}
        if reason:
            data["reason"] = reason
        events.record_event(
            event_type, actor=actor, company=release.publisher.slug, module=release, data=data
        )
    return release


def pending_releases(
    *, actor: User, publisher: str | None = None, page: int = 1, per_page: int = 20
) -> Page:
    """One page of the approval queue: pending releases, oldest first, of one publisher
    (a company slug) or all. Raises PermissionDenied."""
    if not may_review(actor):
        raise PermissionDenied("Only platform admins work the approval queue.")
    query = sa.select(ModuleRelease).where(ModuleRelease.status == ReleaseStatus.PENDING)
    if publisher:
        query = query.join(Company, ModuleRelease.publisher_id == Company.id).where(
            Company.slug == publisher
        )
    query = query.order_by(ModuleRelease.created_at, ModuleRelease.id)
    return paginate(query, page, per_page)


def pending_count() -> int:
    return db.session.execute(
        sa.select(sa.func.count()).where(ModuleRelease.status == ReleaseStatus.PENDING)
    ).scalar_one()
