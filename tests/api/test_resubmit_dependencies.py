"""Resubmitting a rejected release, or replacing a pending one, with a manifest that keeps,
changes, adds or drops dependencies (product.md: a rejected release is fixed and sent again).
The usual fix keeps the dependencies it had; that used to answer 409 because the new rows
were inserted before the old ones were deleted."""

from __future__ import annotations

import hashlib
import io

import pytest

from portal.extensions import db
from portal.models import ModuleDependency, ModuleRelease
from tests import packaging as pkg
from tests.helpers import bearer, empty_store, publish_manifest, set_release_status

URL = "/api/v1/modules/"

BASE = {"name": "base-lib", "version": ">=1.0.0", "type": "module", "optional": False}
AUTH = {"name": "auth-service", "version": ">=2", "type": "service", "optional": False}
REPORTS = {"name": "reports", "version": "^1", "type": "module", "optional": True}


@pytest.fixture(autouse=True)
def _empty_store(app):
    empty_store(app)


def _release_with(app, people, status: str, dependencies: list[dict]) -> int:
    with app.app_context():
        release = publish_manifest(
            pkg.manifest("purchasing", "1.1.0", dependencies=dependencies),
            actor_email=people.developer.email,
        )
        release_id = release.id
        db.session.remove()
    if status != "pending":
        set_release_status(app, release_id, status, "Describe the approval flow.")
    return release_id


def _dependencies(app, release_id: int) -> list[tuple]:
    with app.app_context():
        rows = db.session.execute(
            db.select(ModuleDependency)
            .where(ModuleDependency.module_id == release_id)
            .order_by(ModuleDependency.position)
        ).scalars()
        found = [(d.position, d.name, d.constraint, d.type, d.optional) for d in rows]
        db.session.remove()
    return found


CASES = {
    "kept": ([BASE, AUTH], [BASE, AUTH]),
    "changed": ([BASE, AUTH], [{**BASE, "version": ">=1.2.0"}, {**AUTH, "optional": True}]),
    "added": ([BASE], [BASE, AUTH, REPORTS]),
    "removed": ([BASE, AUTH, REPORTS], [AUTH]),
    "reordered": ([BASE, AUTH], [AUTH, BASE]),
    "all dropped": ([BASE, AUTH], []),
}


@pytest.mark.parametrize("status", ["rejected", "pending"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_new_manifest_replaces_the_dependencies_whatever_it_keeps(
    app, client, people, status, case
):
    before, after = CASES[case]
    release_id = _release_with(app, people, status, before)
    manifest = pkg.manifest(
        "purchasing", "1.1.0", description="Approval flow: two steps", dependencies=after
    )
    resp = client.put(
        f"{URL}{release_id}",
        json={"manifest": manifest},
        headers=bearer(app, people.developer.email),
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["status"] == "pending"
    assert body["description"] == "Approval flow: two steps"
    expected = [(i, d["name"], d["version"], d["type"], d["optional"]) for i, d in enumerate(after)]
    assert _dependencies(app, release_id) == expected
    with app.app_context():
        assert db.session.get(ModuleRelease, release_id).manifest["dependencies"] == after
        db.session.remove()


def test_a_resubmission_with_a_package_keeping_its_dependencies_goes_through(app, client, people):
    release_id = _release_with(app, people, "rejected", [BASE, AUTH])
    text = pkg.manifest_yaml("purchasing", "1.1.0", description="Fixed", dependencies=[BASE, AUTH])
    data = pkg.zip_package(text)
    resp = client.put(
        f"{URL}{release_id}",
        data={
            "package": (io.BytesIO(data), "purchasing-1.1.0.zip"),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        headers=bearer(app, people.developer.email),
        content_type="multipart/form-data",
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["description"] == "Fixed"
    assert [row[1] for row in _dependencies(app, release_id)] == ["base-lib", "auth-service"]
