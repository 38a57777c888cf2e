"""The /publish pages: live validation, submit with and without htmx, resubmission."""

from __future__ import annotations

import io

import sqlalchemy as sa

from portal.extensions import db
from portal.models import Event, ModuleRelease
from tests.helpers import count, login, publish_manifest, publish_package
from tests.packaging import manifest, manifest_yaml, zip_package


def _package_form(data: bytes, **fields):
    return {"package": (io.BytesIO(data), "demo.zip"), **fields}


def test_the_publish_page_is_for_developers(client, people):
    login(client, people.developer.email)
    page = client.get("/publish").get_data(as_text=True)
    assert 'name="package"' in page and 'name="manifest"' in page
    other = client.application.test_client()
    login(other, people.acme_admin.email)
    assert other.get("/publish").status_code == 403


def test_live_validation_puts_manifest_errors_next_to_the_manifest_field(htmx_client, people):
    login(htmx_client, people.developer.email)
    resp = htmx_client.post(
        "/publish/validate", data={"manifest": manifest_yaml(version="1.0")}, content_type=None
    )
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in html
    slot = html.split('id="manifest-errors"', 1)[1].split("</div>", 1)[0]
    assert "/version" in slot
    assert 'hx-swap-oob="innerHTML"' in html


def test_live_validation_of_a_package_reports_its_manifest_and_stores_nothing(
    app, htmx_client, people
):
    login(htmx_client, people.developer.email)
    resp = htmx_client.post("/publish/validate", data=_package_form(zip_package(manifest_yaml())))
    assert 'data-testid="validation-ok"' in resp.get_data(as_text=True)
    bad = htmx_client.post("/publish/validate", data={"package": (io.BytesIO(b"hi"), "x.zip")})
    slot = bad.get_data(as_text=True).split('id="package-errors"', 1)[1].split("</div>", 1)[0]
    assert "zip" in slot
    with app.app_context():
        assert count(ModuleRelease) == 0 and count(Event) == 0


def test_submitting_without_javascript_redirects_to_the_release_page(app, client, people):
    login(client, people.developer.email)
    resp = client.post("/publish", data=_package_form(zip_package(manifest_yaml())))
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/modules/purchasing?version=1.0.0"
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "pending" in page
    assert "purchasing" in client.get("/publish").get_data(as_text=True)


def test_submitting_with_htmx_answers_hx_redirect(htmx_client, people):
    login(htmx_client, people.developer.email)
    resp = htmx_client.post("/publish", data={"manifest": manifest_yaml()})
    assert resp.headers["HX-Redirect"] == "/modules/purchasing?version=1.0.0"


def test_a_bad_submission_shows_errors_and_stores_nothing(app, client, htmx_client, people):
    login(client, people.developer.email)
    resp = client.post("/publish", data={"manifest": "name: [unclosed"})
    assert resp.status_code == 400
    assert "line" in resp.get_data(as_text=True)
    login(htmx_client, people.developer.email)
    partial = htmx_client.post("/publish", data={"manifest": manifest_yaml(name="X")})
    assert partial.status_code == 422 and "<html" not in partial.get_data(as_text=True)
    with app.app_context():
        assert count(ModuleRelease) == 0


def test_a_rejected_release_can_be_fixed_and_resubmitted(app, client, people):
    with app.app_context():
        release = publish_manifest(manifest(), actor_email=people.developer.email)
        release.status, release.status_reason = "rejected", "Describe it better."
        db.session.commit()
        module_id = release.id
    login(client, people.developer.email)
    listing = client.get("/publish").get_data(as_text=True)
    assert "Describe it better." in listing and "Fix and resubmit" in listing
    form = client.get(f"/publish/releases/{module_id}/resubmit").get_data(as_text=True)
    assert "Describe it better." in form and "purchasing" in form
    text = manifest_yaml(description="Purchase orders, approvals and supplier invoices")
    resp = client.post(f"/publish/releases/{module_id}/resubmit", data={"manifest": text})
    assert resp.status_code == 303
    with app.app_context():
        release = db.session.get(ModuleRelease, module_id)
        assert release.status == "pending"
        assert release.description.startswith("Purchase orders")


def test_new_version_starts_from_the_latest_manifest_with_the_patch_bumped(app, client, people):
    with app.app_context():
        module_id = publish_manifest(
            manifest(version="1.4.2"), actor_email=people.developer.email
        ).id
    login(client, people.developer.email)
    page = client.get(f"/publish?from={module_id}").get_data(as_text=True)
    assert "version: 1.4.3" in page


def test_the_module_page_shows_only_what_the_viewer_may_see(app, client, people):
    with app.app_context():
        publish_manifest(manifest(), actor_email=people.developer.email)
    login(client, people.globex_admin.email)
    assert client.get("/modules/purchasing").status_code == 404
    with app.app_context():
        db.session.execute(sa.update(ModuleRelease).values(status="approved"))
        db.session.commit()
    assert client.get("/modules/purchasing").status_code == 200


def _rejected_package_release(app, people, **manifest_fields) -> int:
    data = zip_package(manifest_yaml(**manifest_fields))
    with app.app_context():
        release = publish_package(data, actor_email=people.developer.email, visibility="private")
        release.status, release.status_reason = "rejected", "Describe it better."
        db.session.commit()
        return release.id


def test_the_resubmit_form_of_a_packaged_release_starts_from_the_package_not_the_old_manifest(
    app, client, people
):
    module_id = _rejected_package_release(app, people, description="Old words")
    login(client, people.developer.email)
    form = client.get(f"/publish/releases/{module_id}/resubmit").get_data(as_text=True)
    assert "Old words" not in form  # the textarea is empty: the picked package decides
    assert 'data-testid="resubmit-hint"' in form
    assert '<option value="private" selected>' in form  # the release's real visibility
    fixed = zip_package(manifest_yaml(description="Purchase orders and approvals"))
    resp = client.post(
        f"/publish/releases/{module_id}/resubmit",
        data={**_package_form(fixed), "manifest": "", "visibility": "private"},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 303, resp.get_data(as_text=True)
    with app.app_context():
        release = db.session.get(ModuleRelease, module_id)
        assert (release.status, release.description) == ("pending", "Purchase orders and approvals")
        assert release.visibility == "private"


def test_live_validation_says_when_the_pasted_manifest_differs_from_the_packages(
    app, htmx_client, people
):
    module_id = _rejected_package_release(app, people)
    login(htmx_client, people.developer.email)
    fixed = zip_package(manifest_yaml(description="New words", tags=["erp"]))
    resp = htmx_client.post(
        "/publish/validate",
        data={**_package_form(fixed), "manifest": manifest_yaml(), "release_id": module_id},
        content_type="multipart/form-data",
    )
    page = resp.get_data(as_text=True)
    assert 'data-testid="manifest-overrides"' in page
    assert "description, tags" in page
    same = htmx_client.post(
        "/publish/validate",
        data={**_package_form(fixed), "release_id": module_id},
        content_type="multipart/form-data",
    ).get_data(as_text=True)
    assert 'data-testid="validation-ok"' in same and "manifest-overrides" not in same
