"""The status lifecycle (product.md): who may approve, reject and deprecate, from which
status, what each change records, the latest flag, and two admins deciding at once."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Event, ModuleRelease, StatusChange
from portal.services.accounts import users
from portal.services.errors import Conflict, PermissionDenied, ValidationFailed
from portal.services.review import decisions as review
from tests.helpers import (
    ACME_ADMIN,
    ADMIN,
    GLOBEX_ADMIN,
    GLOBEX_DEV,
    PASSWORD,
    bearer,
    count,
    embedded_sqlite_app,
    error_pointers,
    problem_of,
    publish_manifest,
)
from tests.helpers import ACME_DEV as DEVELOPER
from tests.packaging import manifest

SECOND_ADMIN = "second-admin@example.com"


def _user(email):
    return users.user_by_email(email)


def _decide(module_id: int, status: str, reason: str | None = None, *, by: str = ADMIN):
    return review.change_status(module_id, status, reason, actor=_user(by))


def _release(module_id: int) -> ModuleRelease:
    db.session.expire_all()
    return db.session.get(ModuleRelease, module_id)


def _history(module_id: int) -> list[tuple]:
    """The status changes after the upload (which records None → pending itself)."""
    rows = db.session.execute(
        sa.select(StatusChange)
        .where(StatusChange.module_id == module_id, StatusChange.from_status.is_not(None))
        .order_by(StatusChange.id)
    ).scalars()
    return [(r.from_status, r.to_status, r.actor.email, r.reason) for r in rows]


def _events(module_id: int, type_: str | None = None) -> list[Event]:
    query = sa.select(Event).where(Event.module_id == module_id).order_by(Event.id)
    if type_:
        query = query.where(Event.type == type_)
    return list(db.session.execute(query).scalars())


def _latest(name: str) -> list[str]:
    return list(
        db.session.execute(
            sa.select(ModuleRelease.version).where(
                ModuleRelease.name == name, ModuleRelease.is_latest
            )
        ).scalars()
    )


@pytest.fixture
def acme(app_ctx, people):
    """The acme developer's pending purchasing 1.0.0 (id), in an app context."""
    return publish_manifest(manifest(), actor_email=DEVELOPER).id


# --- Allowed transitions ------------------------------------------------------------------


def test_an_admin_approves_a_pending_release_and_the_change_is_recorded(acme):
    release = _decide(acme, "approved")

    assert release.status == "approved" and release.status_reason is None
    assert _history(acme) == [("pending", "approved", ADMIN, None)]
    [event] = _events(acme, "module.approved")
    assert event.actor == ADMIN and event.company == "acme"
    assert (event.module, event.version) == ("purchasing", "1.0.0")
    assert event.data == {"from": "pending", "to": "approved"}
    assert _latest("purchasing") == ["1.0.0"]


def test_an_admin_rejects_a_pending_release_with_a_reason(acme):
    release = _decide(acme, "rejected", "  Describe the configuration.  ")

    assert release.status == "rejected"
    assert release.status_reason == "Describe the configuration."
    assert _history(acme) == [("pending", "rejected", ADMIN, "Describe the configuration.")]
    [event] = _events(acme, "module.rejected")
    assert event.data == {
        "from": "pending",
        "to": "rejected",
        "reason": "Describe the configuration.",
    }
    assert _latest("purchasing") == []


@pytest.mark.parametrize("reason", [None, "", "   ", "\n\t "])
def test_a_rejection_needs_a_reason_that_says_something(acme, reason):
    with pytest.raises(ValidationFailed) as exc:
        _decide(acme, "rejected", reason)

    assert "/reason" in exc.value.fields
    assert _release(acme).status == "pending"
    assert _history(acme) == [] and _events(acme, "module.rejected") == []


def test_a_reason_longer_than_2000_characters_is_refused(acme):
    with pytest.raises(ValidationFailed) as exc:
        _decide(acme, "rejected", "x" * 2001)
    assert "/reason" in exc.value.fields


def test_an_unknown_status_is_a_validation_error(acme):
    with pytest.raises(ValidationFailed) as exc:
        _decide(acme, "published")
    assert "/status" in exc.value.fields


@pytest.mark.parametrize("by", [DEVELOPER, ACME_ADMIN, ADMIN])
def test_the_publisher_or_an_admin_deprecates_an_approved_release(acme, by):
    _decide(acme, "approved")

    release = _decide(acme, "deprecated", "Superseded by 2.0", by=by)

    assert release.status == "deprecated"
    assert _history(acme)[-1] == ("approved", "deprecated", by, "Superseded by 2.0")
    [event] = _events(acme, "module.deprecated")
    assert event.actor == by
    assert event.data == {"from": "approved", "to": "deprecated", "reason": "Superseded by 2.0"}
    assert _latest("purchasing") == []


def test_a_resubmitted_rejection_goes_back_to_the_queue_and_can_then_be_approved(acme):
    from portal.services.publishing.releases import update_release
    from portal.services.publishing.submissions import Submission

    _decide(acme, "rejected", "Say more in the description.")
    fixed = manifest(description="Purchase orders, approvals and supplier invoices")
    update_release(acme, {}, Submission(manifest_json=fixed), actor=_user(DEVELOPER))
    assert _release(acme).status == "pending"

    assert _decide(acme, "approved").status == "approved"


# --- Refused: who ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["approved", "rejected"])
@pytest.mark.parametrize("by", [DEVELOPER, ACME_ADMIN])
def test_developers_and_company_admins_cannot_decide(acme, by, status):
    with pytest.raises(PermissionDenied):
        _decide(acme, status, "no", by=by)

    assert _release(acme).status == "pending"
    assert _history(acme) == [] and count(Event) == 1  # module.registered only


@pytest.mark.parametrize("status", ["approved", "rejected"])
def test_an_admin_cannot_decide_on_a_release_they_uploaded_themselves(app_ctx, people, status):
    own = publish_manifest(manifest(), actor_email=ADMIN, publisher="acme").id
    users.create_user(SECOND_ADMIN, PASSWORD, "platform_admin")

    with pytest.raises(PermissionDenied):
        _decide(own, status, "looks fine to me")
    assert _release(own).status == "pending"

    assert _decide(own, status, "looks fine", by=SECOND_ADMIN).status == status


def test_another_company_cannot_deprecate_a_release_it_did_not_publish(acme):
    _decide(acme, "approved")

    with pytest.raises(PermissionDenied):
        _decide(acme, "deprecated", by=GLOBEX_DEV)
    with pytest.raises(PermissionDenied):
        _decide(acme, "deprecated", by=GLOBEX_ADMIN)
    assert _release(acme).status == "approved"


# --- Refused: from which status --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        (["approved"], "approved"),
        (["approved"], "rejected"),
        (["rejected"], "approved"),
        (["rejected"], "rejected"),
        ([], "deprecated"),
        (["rejected"], "deprecated"),
        (["approved", "deprecated"], "approved"),
        (["approved", "deprecated"], "deprecated"),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) else v,
)
def test_a_transition_not_allowed_from_the_current_status_is_a_conflict(acme, path, refused):
    for status in path:
        _decide(acme, status, "because")
    before = (_release(acme).status, len(_history(acme)), count(Event))

    with pytest.raises(Conflict):
        _decide(acme, refused, "again")

    assert (_release(acme).status, len(_history(acme)), count(Event)) == before


# --- The latest flag ------------------------------------------------------------------------


def test_the_latest_flag_follows_approvals_and_deprecations(app_ctx, people):
    ids = {
        v: publish_manifest(manifest("ledger", v), actor_email=DEVELOPER).id
        for v in ("1.9.0", "1.10.0", "2.0.0-rc.1", "2.1.0")
    }
    assert _latest("ledger") == []

    _decide(ids["1.9.0"], "approved")
    assert _latest("ledger") == ["1.9.0"]
    _decide(ids["1.10.0"], "approved")  # SemVer, not text: 1.10.0 > 1.9.0
    assert _latest("ledger") == ["1.10.0"]
    _decide(ids["2.0.0-rc.1"], "approved")  # a stable release is preferred
    assert _latest("ledger") == ["1.10.0"]
    _decide(ids["2.1.0"], "rejected", "Broken build")  # only approvals count
    assert _latest("ledger") == ["1.10.0"]

    _decide(ids["1.10.0"], "deprecated", by=DEVELOPER)
    assert _latest("ledger") == ["1.9.0"]
    _decide(ids["1.9.0"], "deprecated", by=DEVELOPER)
    assert _latest("ledger") == ["2.0.0-rc.1"]  # no stable one left
    _decide(ids["2.0.0-rc.1"], "deprecated", by=DEVELOPER)
    assert _latest("ledger") == []


def test_the_latest_flag_is_per_name(app_ctx, people):
    a = publish_manifest(manifest("ledger", "3.0.0"), actor_email=DEVELOPER).id
    b = publish_manifest(manifest("billing", "1.0.0"), actor_email=DEVELOPER).id
    _decide(a, "approved")
    _decide(b, "approved")
    assert _latest("ledger") == ["3.0.0"] and _latest("billing") == ["1.0.0"]


# --- The queue ------------------------------------------------------------------------------


def test_the_queue_is_paged_oldest_first_and_filtered_by_publisher(app_ctx, people):
    acme = [publish_manifest(manifest(f"q-{i:02d}"), actor_email=DEVELOPER).id for i in range(5)]
    globex = publish_manifest(manifest("globex-one"), actor_email=GLOBEX_DEV).id
    _decide(acme[1], "approved")

    first = review.pending_releases(actor=_user(ADMIN), page=1, per_page=3)
    second = review.pending_releases(actor=_user(ADMIN), page=2, per_page=3)
    acme_only = review.pending_releases(actor=_user(ADMIN), publisher="acme", per_page=3)

    assert [r.id for r in first.items] == [acme[0], acme[2], acme[3]]
    assert [r.id for r in second.items] == [acme[4], globex]
    assert (first.total, first.pages, second.page) == (5, 2, 2)
    assert [r.id for r in acme_only.items] == [acme[0], acme[2], acme[3]]
    assert (acme_only.total, acme_only.has_next) == (4, True)
    with pytest.raises(PermissionDenied):
        review.pending_releases(actor=_user(ACME_ADMIN))


# --- Two admins at the same moment ----------------------------------------------------------


def _race(app, module_id: int, decisions: list[tuple[str, str, str | None]]) -> list:
    """Several admins deciding on one release at the same moment (see _together)."""
    return _together(app, [(email, module_id, *decision) for email, *decision in decisions])


def _together(app, decisions: list[tuple[str, int, str, str | None]]) -> list:
    """Run each (admin email, release id, status, reason) in its own thread and app
    context, released together by a barrier; returns each thread's outcome: the status,
    Conflict, or any other error (which fails the tests that look)."""
    barrier = threading.Barrier(len(decisions))
    outcomes: list = [None] * len(decisions)

    def decide(i: int, email: str, module_id: int, status: str, reason: str | None) -> None:
        with app.app_context():
            try:
                actor = users.user_by_email(email)
                # Detach the actor and end the read: on SQLite a transaction outside a
                # request holds the write lock, which would keep the other thread out.
                db.session.close()
                barrier.wait(timeout=30)
                outcomes[i] = review.change_status(module_id, status, reason, actor=actor).status
            except Conflict:
                outcomes[i] = Conflict
            except Exception as exc:  # anything else fails the test, with its reason
                outcomes[i] = exc
            finally:
                db.session.remove()

    threads = [
        threading.Thread(target=decide, args=(i, *decision)) for i, decision in enumerate(decisions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def _assert_one_winner(app, module_id: int, outcomes: list) -> str:
    winners = [o for o in outcomes if isinstance(o, str)]
    assert len(winners) == 1 and outcomes.count(Conflict) == len(outcomes) - 1, outcomes
    with app.app_context():
        assert _release(module_id).status == winners[0]
        assert len(_history(module_id)) == 1
        assert len(_events(module_id)) == 2  # module.registered and the one decision
        db.session.remove()
    return winners[0]


def _pending_releases(app, n: int) -> list[int]:
    with app.app_context():
        ids = [
            publish_manifest(manifest(f"race-{i}", "1.0.0"), actor_email=DEVELOPER).id
            for i in range(n)
        ]
        db.session.remove()
    return ids


ROUNDS = [
    [(ADMIN, "approved", None), (SECOND_ADMIN, "approved", None)],
    [(ADMIN, "approved", None), (SECOND_ADMIN, "rejected", "Not yet")],
    [(ADMIN, "rejected", "Missing docs"), (SECOND_ADMIN, "approved", None)],
]


def _second_admin(app) -> None:
    with app.app_context():
        users.create_user(SECOND_ADMIN, PASSWORD, "platform_admin")
        db.session.remove()


@pytest.mark.truncate
def test_two_admins_deciding_at_once_one_wins_the_other_gets_a_conflict(app, people):
    _second_admin(app)
    rounds = ROUNDS * 2
    for module_id, choices in zip(_pending_releases(app, len(rounds)), rounds, strict=True):
        _assert_one_winner(app, module_id, _race(app, module_id, choices))


@pytest.mark.truncate
def test_deciding_two_releases_of_one_name_at_once_both_apply(app, people):
    """Approving 2.0.0 while 1.0.0 (the latest) is deprecated: both transactions update
    the name's latest flags and the catalog generation. Neither may fail (a deadlock
    between the two would be a 500); afterwards 2.0.0 is the one latest release."""
    _second_admin(app)
    for round_ in range(6):
        name = f"pair-{round_}"
        with app.app_context():
            old = publish_manifest(manifest(name, "1.0.0"), actor_email=DEVELOPER).id
            _decide(old, "approved")
            new = publish_manifest(manifest(name, "2.0.0"), actor_email=DEVELOPER).id
            db.session.remove()
        outcomes = _together(
            app, [(ADMIN, new, "approved", None), (SECOND_ADMIN, old, "deprecated", None)]
        )
        assert outcomes == ["approved", "deprecated"], outcomes
        with app.app_context():
            assert _latest(name) == ["2.0.0"]
            db.session.remove()


@contextmanager
def _someone_decides_first(app, module_id: int):
    """Make the other admin's decision land between our read and our conditional UPDATE:
    the window the status check before the UPDATE cannot close on its own."""
    real = review.unit_of_work
    raced = []

    @contextmanager
    def racing_unit_of_work(*args, **kwargs):
        if not raced:
            raced.append(True)
            db.session.commit()  # end our read, so the other writer is not kept out
            outcome = _race(app, module_id, [(SECOND_ADMIN, "approved", None)])
            assert outcome == ["approved"]
        with real(*args, **kwargs) as session:
            yield session

    review.unit_of_work = racing_unit_of_work
    try:
        yield
    finally:
        review.unit_of_work = real


@pytest.mark.truncate
def test_the_conditional_update_refuses_a_decision_read_before_another_won(app, people):
    _second_admin(app)
    [module_id] = _pending_releases(app, 1)

    with app.app_context():
        with _someone_decides_first(app, module_id), pytest.raises(Conflict):
            review.change_status(module_id, "rejected", "Too late", actor=_user(ADMIN))
        assert _release(module_id).status == "approved"
        assert _history(module_id) == [("pending", "approved", SECOND_ADMIN, None)]
        db.session.remove()


@pytest.fixture
def sqlite_app(tmp_path):
    """The embedded mode, always SQLite, whatever backend the rest of the run uses."""

    def seed(_people):
        users.create_user(SECOND_ADMIN, PASSWORD, "platform_admin")

    with embedded_sqlite_app(tmp_path, seed) as (app, _people):
        yield app


def test_two_admins_at_once_on_the_embedded_sqlite_one_wins_the_other_gets_a_conflict(
    sqlite_app,
):
    assert sqlite_app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
    rounds = ROUNDS * 2
    ids = _pending_releases(sqlite_app, len(rounds))
    for module_id, choices in zip(ids, rounds, strict=True):
        _assert_one_winner(sqlite_app, module_id, _race(sqlite_app, module_id, choices))


def test_on_the_embedded_sqlite_a_decision_read_before_another_won_is_a_conflict(sqlite_app):
    [module_id] = _pending_releases(sqlite_app, 1)
    with sqlite_app.app_context():
        with _someone_decides_first(sqlite_app, module_id), pytest.raises(Conflict):
            review.change_status(module_id, "approved", actor=_user(ADMIN))
        assert _history(module_id) == [("pending", "approved", SECOND_ADMIN, None)]
        db.session.remove()


# --- The same rules through the API (PATCH /api/v1/modules/{id}/status) ----------------------


def _patch(client, app, module_id: int, email: str, body: dict):
    return client.patch(
        f"/api/v1/modules/{module_id}/status", json=body, headers=bearer(app, email)
    )


@pytest.fixture
def pending_id(app, people):
    with app.app_context():
        module_id = publish_manifest(manifest(), actor_email=DEVELOPER).id
        db.session.remove()
    return module_id


def test_api_an_admin_approves_200_with_the_module(app, client, pending_id):
    resp = _patch(client, app, pending_id, ADMIN, {"status": "approved"})

    assert resp.status_code == 200
    body = resp.get_json()
    assert body["id"] == pending_id and body["status"] == "approved"
    assert body["status_reason"] is None


def test_api_an_admin_rejects_with_a_reason_200(app, client, pending_id):
    resp = _patch(client, app, pending_id, ADMIN, {"status": "rejected", "reason": "Add docs"})

    assert resp.status_code == 200
    assert resp.get_json()["status"] == "rejected"
    assert resp.get_json()["status_reason"] == "Add docs"


@pytest.mark.parametrize("body", [{"status": "rejected"}, {"status": "rejected", "reason": "  "}])
def test_api_a_rejection_without_a_reason_is_422_pointing_at_the_reason(
    app, client, pending_id, body
):
    problem = problem_of(_patch(client, app, pending_id, ADMIN, body), 422)
    assert error_pointers(problem) == ["/reason"]


def test_api_an_unknown_status_is_422(app, client, pending_id):
    problem = problem_of(_patch(client, app, pending_id, ADMIN, {"status": "live"}), 422)
    assert error_pointers(problem) == ["/status"]


@pytest.mark.parametrize("email", [DEVELOPER, ACME_ADMIN])
def test_api_developers_and_company_admins_approving_get_403(app, client, pending_id, email):
    problem_of(_patch(client, app, pending_id, email, {"status": "approved"}), 403)


def test_api_another_companys_admin_does_not_see_the_pending_release_404(app, client, pending_id):
    problem_of(_patch(client, app, pending_id, GLOBEX_ADMIN, {"status": "approved"}), 404)


def test_api_an_admin_deciding_on_their_own_upload_gets_403(app, client, people):
    with app.app_context():
        own = publish_manifest(manifest(), actor_email=ADMIN, publisher="acme").id
        db.session.remove()
    problem_of(_patch(client, app, own, ADMIN, {"status": "approved"}), 403)


def test_api_approving_an_approved_release_is_409(app, client, pending_id):
    assert _patch(client, app, pending_id, ADMIN, {"status": "approved"}).status_code == 200
    problem_of(_patch(client, app, pending_id, ADMIN, {"status": "approved"}), 409)


def test_api_deprecating_a_pending_release_is_409(app, client, pending_id):
    problem_of(_patch(client, app, pending_id, DEVELOPER, {"status": "deprecated"}), 409)


def test_api_the_publishers_developer_deprecates_an_approved_release_200(app, client, pending_id):
    _patch(client, app, pending_id, ADMIN, {"status": "approved"})
    resp = _patch(client, app, pending_id, DEVELOPER, {"status": "deprecated"})
    assert resp.status_code == 200 and resp.get_json()["status"] == "deprecated"
