"""A module's configuration fields keep the manifest's order everywhere: the API, the module
page and the install form, on both databases (PostgreSQL's JSONB used to sort the keys)."""

from __future__ import annotations

from portal.extensions import db
from tests.helpers import approved_release, bearer, login

# In no sorted order: not alphabetical, not by length (JSONB's), not reversed.
ORDER = ["warehouse", "max_parcels", "carrier", "api_key", "zone"]
SCHEMA = {
    "type": "object",
    "properties": {
        "warehouse": {"type": "string", "default": "main"},
        "max_parcels": {"type": "integer", "default": 10},
        "carrier": {"type": "string", "default": "dhl"},
        "api_key": {"type": "string", "format": "password", "default": "k"},
        "zone": {"type": "string", "default": "eu"},
    },
}


def _positions(text: str, needles: list[str]) -> list[int]:
    return [text.index(needle) for needle in needles]


def test_configuration_fields_keep_the_manifests_order(app, client, people):
    with app.app_context():
        release_id = approved_release("shipping", config_schema=SCHEMA).id
        db.session.remove()
    body = client.get(
        f"/api/v1/modules/{release_id}", headers=bearer(app, people.acme_admin.email)
    ).get_json()
    assert list(body["manifest"]["config_schema"]["properties"]) == ORDER

    login(client, people.acme_admin.email)
    page = client.get("/modules/shipping").get_data(as_text=True)
    found = _positions(page, [f"<code>{key}</code>" for key in ORDER])
    assert found == sorted(found)

    form = client.get("/modules/shipping/install").get_data(as_text=True)
    found = _positions(form, [f'name="config/{key}"' for key in ORDER])
    assert found == sorted(found)
