"""Reading, downloading, editing, resubmitting and deleting releases through /api/v1/modules
(a developer follows each release; spec/product.md): who sees what, list filters and paging,
exact package bytes, and the events of each change."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from portal.extensions import db
from portal.models import Event, ModuleRelease, StatusChange
from tests import packaging as pkg
from tests.helpers import (
    bearer,
    empty_store,
    error_pointers,
    problem_of,
    publish_manifest,
    publish_package,
    registry_state,
    set_release_status,
    stored_files,
)

URL = "/api/v1/modules/"
PACKAGE = pkg.zip_package(pkg.manifest_yaml("purchasing", "1.0.0"), folder="purchasing")


@pytest.fixture(autouse=True)
def _empty_store(app):
    empty_store(app)


@pytest.fixture
def shelf(app, people):
    """Releases of both companies in every state that matters for visibility.

    acme:   purchasing 1.0.0 approved public (with a package), purchasing 1.1.0 pending,
            secret-tool 1.0.0 approved private;
    globex: globex-crm 2.0.0 approved public, globex-draft 0.1.0 pending.
    """
    with app.app_context():
        ids = {
            "purchasing-1.0.0": publish_package(PACKAGE, actor_email=people.developer.email).id,
            "purchasing-1.1.0": publish_manifest(
                pkg.manifest("purchasing", "1.1.0"), actor_email=people.developer.email
            ).id,
            "secret-tool": publish_manifest(
                pkg.manifest("secret-tool", tags=["internal"]),
                actor_email=people.developer.email,
                visibility="private",
            ).id,
            "globex-crm": publish_manifest(
                pkg.manifest("globex-crm", "2.0.0", category="sales"),
                actor_email=people.globex_dev.email,
            ).id,
            "globex-draft": publish_manifest(
                pkg.manifest("globex-draft", "0.1.0"), actor_email=people.globex_dev.email
            ).id,
        }
        db.session.remove()
    for key in ("purchasing-1.0.0", "secret-tool", "globex-crm"):
        set_release_status(app, ids[key], "approved")
    return ids


@pytest.fixture
def headers(app, people):
    """Bearer headers by role name: developer, acme_admin, globex_dev, globex_admin, admin."""
    return {
        role: bearer(app, getattr(people, role).email)
        for role in ("developer", "acme_admin", "globex_dev", "globex_admin", "admin")
    }


def listed(client, headers, **query) -> list[str]:
    resp = client.get(URL, headers=headers, query_string=query)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return sorted(f"{m['name']} {m['version']}" for m in resp.get_json()["items"])


def events_of(app, type_: str) -> list[Event]:
    with app.app_context():
        rows = list(db.session.execute(db.select(Event).where(Event.type == type_)).scalars())
        db.session.expunge_all()
        db.session.remove()
    return rows


# --- Who sees what ----------------------------------------------------------------------------

EVERYTHING = [
    "globex-crm 2.0.0",
    "globex-draft 0.1.0",
    "purchasing 1.0.0",
    "purchasing 1.1.0",
    "secret-tool 1.0.0",
]


def test_the_list_shows_approved_public_releases_plus_all_of_the_callers_company(
    client, shelf, headers, subtests
):
    not_globex_draft = [n for n in EVERYTHING if n != "globex-draft 0.1.0"]
    for role, expected in (
        ("developer", not_globex_draft),
        ("acme_admin", not_globex_draft),
        ("globex_dev", ["globex-crm 2.0.0", "globex-draft 0.1.0", "purchasing 1.0.0"]),
        ("admin", EVERYTHING),
    ):
        with subtests.test(role=role):
            assert listed(client, headers[role]) == expected


def test_the_list_filters_by_name_status_visibility_and_publisher(client, shelf, headers, subtests):
    approved = ["globex-crm 2.0.0", "purchasing 1.0.0", "secret-tool 1.0.0"]
    for query, expected in (
        ({"name": "purchasing"}, ["purchasing 1.0.0", "purchasing 1.1.0"]),
        ({"status": "pending"}, ["purchasing 1.1.0"]),
        ({"status": "approved"}, approved),
        ({"visibility": "private"}, ["secret-tool 1.0.0"]),
        ({"publisher": "globex"}, ["globex-crm 2.0.0"]),
        ({"publisher": "acme", "status": "approved", "visibility": "public"}, ["purchasing 1.0.0"]),
        ({"name": "nothing-here"}, []),
    ):
        with subtests.test(**query):
            assert listed(client, headers["developer"], **query) == expected


def test_the_list_answers_the_same_without_the_trailing_slash(client, shelf, headers):
    with_slash = client.get(URL, headers=headers["developer"]).get_json()
    without = client.get(URL.rstrip("/"), headers=headers["developer"]).get_json()
    assert without == with_slash and without["total"] == 4


def test_an_unknown_filter_value_or_a_page_that_is_not_positive_is_a_422(
    client, shelf, headers, subtests
):
    for query, pointer in (
        ({"status": "published"}, "/status"),
        ({"visibility": "secret"}, "/visibility"),
        ({"page": "0"}, "/page"),
        ({"per_page": "0"}, "/per_page"),
        ({"page": "-1"}, "/page"),
        ({"per_page": "ten"}, "/per_page"),
    ):
        with subtests.test(**query):
            resp = client.get(URL, headers=headers["developer"], query_string=query)
            assert error_pointers(problem_of(resp, 422)) == [pointer]


def test_paging_clamps_per_page_to_100_and_counts_the_total(client, shelf, headers):
    body = client.get(URL, headers=headers["admin"], query_string={"per_page": 500}).get_json()
    assert (body["page"], body["per_page"], body["total"], len(body["items"])) == (1, 100, 5, 5)
    second = client.get(
        URL, headers=headers["admin"], query_string={"page": 2, "per_page": 2}
    ).get_json()
    assert (second["page"], second["per_page"], second["total"]) == (2, 2, 5)
    assert len(second["items"]) == 2
    beyond = client.get(URL, headers=headers["admin"], query_string={"page": 9}).get_json()
    assert beyond["items"] == [] and beyond["total"] == 5


def test_listing_needs_a_token(client, shelf):
    problem_of(client.get(URL), 401)


def test_another_companys_pending_or_private_release_is_a_404(client, shelf, headers):
    for key in ("purchasing-1.1.0", "secret-tool"):
        module_id = shelf[key]
        for role in ("globex_dev", "globex_admin"):
            problem_of(client.get(f"{URL}{module_id}", headers=headers[role]), 404)
            problem_of(client.get(f"{URL}{module_id}/package", headers=headers[role]), 404)
        for role in ("developer", "acme_admin", "admin"):
            assert client.get(f"{URL}{module_id}", headers=headers[role]).status_code == 200


def test_an_approved_public_release_is_visible_to_another_company(client, shelf, headers):
    resp = client.get(f"{URL}{shelf['purchasing-1.0.0']}", headers=headers["globex_dev"])
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["publisher"], body["status"], body["visibility"]) == (
        "acme",
        "approved",
        "public",
    )


def test_a_release_that_does_not_exist_is_a_404(client, shelf, headers):
    problem_of(client.get(f"{URL}999999", headers=headers["admin"]), 404)
    problem_of(client.get(f"{URL}999999/package", headers=headers["admin"]), 404)


# --- Downloads ----------------------------------------------------------------------------------


def test_the_package_download_gives_back_the_exact_bytes_with_etag_and_length(
    client, shelf, headers
):
    digest = hashlib.sha256(PACKAGE).hexdigest()
    resp = client.get(f"{URL}{shelf['purchasing-1.0.0']}/package", headers=headers["globex_dev"])
    assert resp.status_code == 200
    assert resp.get_data() == PACKAGE
    assert resp.headers["ETag"] == f'"{digest}"'
    assert resp.headers["Content-Length"] == str(len(PACKAGE))
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and "purchasing-1.0.0.zip" in disposition
    assert resp.mimetype == "application/zip"


def test_a_download_with_the_etag_in_if_none_match_is_a_304(client, shelf, headers):
    url = f"{URL}{shelf['purchasing-1.0.0']}/package"
    etag = client.get(url, headers=headers["developer"]).headers["ETag"]
    resp = client.get(url, headers={**headers["developer"], "If-None-Match": etag})
    assert resp.status_code == 304
    assert resp.get_data() == b""
    other = client.get(url, headers={**headers["developer"], "If-None-Match": '"other"'})
    assert other.status_code == 200 and other.get_data() == PACKAGE


def test_a_tar_gz_package_downloads_as_what_was_uploaded(app, client, people, headers):
    data = pkg.tar_package(pkg.manifest_yaml("inventory"), folder="inventory")
    resp = client.post(
        URL,
        data={"package": (io.BytesIO(data), "inventory.zip")},
        headers=headers["developer"],
    )
    assert resp.status_code == 201
    download = client.get(f"{resp.headers['Location']}/package", headers=headers["developer"])
    assert download.get_data() == data
    assert download.mimetype == "application/gzip"
    assert "inventory-1.0.0.tar.gz" in download.headers["Content-Disposition"]


def test_a_manifest_only_release_has_no_package_to_download(client, shelf, headers):
    body = problem_of(
        client.get(f"{URL}{shelf['purchasing-1.1.0']}/package", headers=headers["developer"]), 404
    )
    assert "package" in body["detail"]


# --- Editing metadata ---------------------------------------------------------------------------


def test_a_metadata_edit_answers_200_and_records_what_changed(app, client, shelf, headers):
    module_id = shelf["purchasing-1.0.0"]
    resp = client.put(
        f"{URL}{module_id}",
        json={"description": "Buying, done well", "tags": ["erp"], "display_name": None},
        headers=headers["developer"],
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["description"] == "Buying, done well" and body["tags"] == ["erp"]
    assert body["status"] == "approved"  # metadata edits do not send it back to review
    (event,) = events_of(app, "module.updated")
    assert event.module_id == module_id and event.company == "acme"
    assert event.data["changed"] == ["description", "tags"]


def test_a_metadata_edit_as_multipart_works_the_same(app, client, shelf, headers):
    resp = client.put(
        f"{URL}{shelf['purchasing-1.0.0']}",
        data={"visibility": "private"},
        headers=headers["developer"],
        content_type="multipart/form-data",
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["visibility"] == "private"
    assert events_of(app, "module.updated")[0].data["changed"] == ["visibility"]


def test_an_invalid_metadata_edit_is_a_422_and_changes_nothing(
    app, client, shelf, headers, subtests
):
    before = registry_state(app)
    url = f"{URL}{shelf['purchasing-1.0.0']}"
    for changes, pointer in (
        ({"visibility": "secret"}, "/visibility"),
        ({"tags": ["ok"] * 11}, "/tags"),
        ({"tags": "erp"}, "/tags"),
        ({"description": ""}, "/description"),
        ({"description": "   "}, "/description"),
        ({"description": "x" * 501}, "/description"),
        ({"display_name": "x" * 201}, "/display_name"),  # over the column: a 500 on PostgreSQL
        ({"category": "x" * 65}, "/category"),
        ({"category": 7}, "/category"),
    ):
        with subtests.test(changes=str(changes)[:40]):
            resp = client.put(url, json=changes, headers=headers["developer"])
            assert error_pointers(problem_of(resp, 422)) == [pointer]
            assert registry_state(app) == before


def test_an_unreadable_put_body_is_a_400(client, shelf, headers):
    for payload in ("{broken", "[]"):
        resp = client.put(
            f"{URL}{shelf['purchasing-1.0.0']}",
            data=payload,
            content_type="application/json",
            headers=headers["developer"],
        )
        problem_of(resp, 400)


def test_a_put_body_nested_thousands_deep_is_a_422_not_a_crash(client, shelf, headers):
    deep = '{"type": "object", "properties": {"a": ' * 3000 + "{}" + "}}" * 3000
    payload = '{"manifest": {"name": "purchasing", "config_schema": ' + deep + "}}"
    resp = client.put(
        f"{URL}{shelf['purchasing-1.1.0']}",
        data=payload,
        content_type="application/json",
        headers=headers["developer"],
    )
    assert error_pointers(problem_of(resp, 422)) == ["/config_schema"]


def test_only_the_publishers_developers_and_admins_edit_a_release(
    app, client, shelf, headers, subtests
):
    before = registry_state(app)
    for role, key, status in (
        ("globex_dev", "purchasing-1.0.0", 403),  # visible to globex, but not theirs
        ("globex_dev", "purchasing-1.1.0", 404),  # not even visible
        ("acme_admin", "purchasing-1.0.0", 403),  # company admins install, they don't publish
    ):
        with subtests.test(role=role, key=key):
            body = {"description": "mine"}
            problem_of(client.put(f"{URL}{shelf[key]}", json=body, headers=headers[role]), status)
            assert registry_state(app) == before


def test_a_platform_admin_may_edit_any_release(client, shelf, headers):
    resp = client.put(
        f"{URL}{shelf['globex-draft']}", json={"category": "sales"}, headers=headers["admin"]
    )
    assert resp.status_code == 200 and resp.get_json()["category"] == "sales"


# --- Replacing the manifest or package; resubmitting -------------------------------------------


def test_a_pending_release_takes_a_new_manifest_of_the_same_name_and_version(
    app, client, shelf, headers
):
    module_id = shelf["purchasing-1.1.0"]
    manifest = pkg.manifest(
        "purchasing", "1.1.0", description="Now with approvals",
        dependencies=[{"name": "business-core", "version": ">=1.0.0"}],
    )  # fmt: skip
    resp = client.put(
        f"{URL}{module_id}", json={"manifest": manifest}, headers=headers["developer"]
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["description"] == "Now with approvals" and body["status"] == "pending"
    assert body["dependencies"][0]["name"] == "business-core"
    (event,) = events_of(app, "module.updated")
    assert event.data["changed"] == ["manifest"]


def test_a_pending_release_takes_a_new_package_as_multipart(app, client, shelf, headers):
    module_id = shelf["purchasing-1.1.0"]
    data = pkg.tar_package(pkg.manifest_yaml("purchasing", "1.1.0"))
    resp = client.put(
        f"{URL}{module_id}",
        data={"package": (io.BytesIO(data), "purchasing.tgz")},
        headers=headers["developer"],
        content_type="multipart/form-data",
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    digest = hashlib.sha256(data).hexdigest()
    assert resp.get_json()["package"]["sha256"] == digest
    assert f"{digest[:2]}/{digest[2:4]}/{digest}" in stored_files(app)
    assert not [f for f in stored_files(app) if f.startswith("tmp/")]
    download = client.get(f"{URL}{module_id}/package", headers=headers["developer"])
    assert download.get_data() == data


def test_a_new_manifest_on_an_approved_release_is_a_409(app, client, shelf, headers):
    before = registry_state(app)
    manifest = pkg.manifest("purchasing", "1.0.0", description="Sneaky change")
    resp = client.put(
        f"{URL}{shelf['purchasing-1.0.0']}",
        json={"manifest": manifest},
        headers=headers["developer"],
    )
    problem_of(resp, 409)
    assert registry_state(app) == before


def test_a_resubmission_with_another_name_or_version_is_a_422(
    app, client, shelf, headers, subtests
):
    before = registry_state(app)
    for name, version, pointer in (
        ("purchasing", "1.2.0", "/version"),
        ("sales", "1.1.0", "/name"),
    ):
        with subtests.test(name=name, version=version):
            resp = client.put(
                f"{URL}{shelf['purchasing-1.1.0']}",
                json={"manifest": pkg.manifest(name, version)},
                headers=headers["developer"],
            )
            assert error_pointers(problem_of(resp, 422)) == [pointer]
            assert registry_state(app) == before


def test_a_resubmission_with_an_invalid_manifest_is_a_422_and_changes_nothing(
    app, client, shelf, headers
):
    before = registry_state(app)
    text = "name: purchasing\nversion: 1.1.0\ndescription: d\nauthor: a\ncolour: red\n"
    resp = client.put(
        f"{URL}{shelf['purchasing-1.1.0']}",
        data={"manifest": text, "description": "also this"},
        headers=headers["developer"],
        content_type="multipart/form-data",
    )
    assert error_pointers(problem_of(resp, 422)) == ["/colour"]
    assert registry_state(app) == before


def test_resubmitting_a_rejected_release_puts_it_back_to_pending(app, client, shelf, headers):
    module_id = shelf["purchasing-1.1.0"]
    set_release_status(app, module_id, "rejected", "Describe the approval flow.")
    manifest = pkg.manifest("purchasing", "1.1.0", description="Approval flow: two steps")
    resp = client.put(
        f"{URL}{module_id}", json={"manifest": manifest}, headers=headers["developer"]
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert (body["status"], body["status_reason"]) == ("pending", None)
    with app.app_context():
        last = (
            db.session.execute(
                db.select(StatusChange)
                .where(StatusChange.module_id == module_id)
                .order_by(StatusChange.id.desc())
            )
            .scalars()
            .first()
        )
        assert (last.from_status, last.to_status) == ("rejected", "pending")
        db.session.remove()
    (event,) = events_of(app, "module.updated")
    assert event.data["resubmitted"] is True and "manifest" in event.data["changed"]


def test_a_metadata_edit_alone_does_not_resubmit_a_rejected_release(app, client, shelf, headers):
    module_id = shelf["purchasing-1.1.0"]
    set_release_status(app, module_id, "rejected", "Too vague.")
    resp = client.put(f"{URL}{module_id}", json={"tags": ["erp"]}, headers=headers["developer"])
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "rejected"


# --- Deleting -----------------------------------------------------------------------------------


def test_delete_is_a_soft_delete_with_an_event_and_then_the_release_is_gone(
    app, client, shelf, headers
):
    module_id = shelf["purchasing-1.0.0"]
    resp = client.delete(f"{URL}{module_id}", headers=headers["developer"])
    assert resp.status_code == 204 and resp.get_data() == b""
    with app.app_context():
        release = db.session.get(ModuleRelease, module_id)
        assert release.status == "deleted" and release.deleted_at is not None
        db.session.remove()
    (event,) = events_of(app, "module.deleted")
    assert (event.module_id, event.module, event.company) == (module_id, "purchasing", "acme")
    for role in ("developer", "globex_dev", "admin"):
        problem_of(client.get(f"{URL}{module_id}", headers=headers[role]), 404)
        problem_of(client.get(f"{URL}{module_id}/package", headers=headers[role]), 404)
    assert "purchasing 1.0.0" not in listed(client, headers["admin"])
    problem_of(client.delete(f"{URL}{module_id}", headers=headers["developer"]), 404)


def test_deleting_another_companys_unseen_release_is_a_404(app, client, shelf, headers):
    before = registry_state(app)
    resp = client.delete(f"{URL}{shelf['purchasing-1.1.0']}", headers=headers["globex_dev"])
    problem_of(resp, 404)
    assert registry_state(app) == before


def test_deleting_another_companys_public_release_is_refused(app, client, shelf, headers):
    before = registry_state(app)
    resp = client.delete(f"{URL}{shelf['purchasing-1.0.0']}", headers=headers["globex_dev"])
    problem_of(resp, 403)
    assert registry_state(app) == before


def test_a_deleted_name_stays_with_its_company(app, client, shelf, headers):
    client.delete(f"{URL}{shelf['globex-draft']}", headers=headers["globex_dev"])
    resp = client.post(
        URL, json={"manifest": pkg.manifest("globex-draft", "0.2.0")}, headers=headers["developer"]
    )
    problem_of(resp, 403)


def test_a_status_change_body_nested_thousands_deep_is_a_422_not_a_crash(client, shelf, headers):
    payload = '{"status": ' + "[" * 5000 + "]" * 5000 + "}"
    resp = client.patch(
        f"{URL}{shelf['purchasing-1.1.0']}/status",
        data=payload,
        content_type="application/json",
        headers=headers["admin"],
    )
    assert error_pointers(problem_of(resp, 422)) == ["/status"]


def test_a_package_of_several_megabytes_round_trips_exactly(app, client, people, headers):
    """Over werkzeug's 500 kB form-memory default: every file part used to be a 413."""
    data = pkg.zip_package(pkg.manifest_yaml("assets"), files={"blob.bin": os.urandom(3 << 20)})
    resp = client.post(
        URL,
        data={
            "package": (io.BytesIO(data), "assets.zip"),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        headers=headers["developer"],
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    download = client.get(f"{resp.headers['Location']}/package", headers=headers["developer"])
    assert download.get_data() == data
    assert download.headers["Content-Length"] == str(len(data))
