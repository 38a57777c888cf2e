"""Every route of the app (pages, htmx partials, API) against every kind of caller.

The table below is the access contract: a route missing from it fails
`test_every_route_is_in_the_table`, so new routes must state who may call them.
Roles: anonymous, developer (of acme), company admin of the owning company (acme),
company admin of another company (globex), platform admin.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from portal.extensions import db
from portal.services.accounts import users
from portal.services.installations.installs import InstallRequest, install_module
from tests.helpers import (
    PASSWORD,
    approved_release,
    bearer,
    login,
    make_people,
    publish_package,
)
from tests.packaging import manifest, manifest_yaml, zip_package

ROLES = ("anonymous", "developer", "owner_admin", "other_admin", "platform_admin")
EMAILS = {
    "developer": "dev@acme.test",
    "owner_admin": "admin@acme.test",
    "other_admin": "admin@globex.test",
    "platform_admin": "admin@example.com",
}


def _own_credentials(role, world):
    if role == "anonymous":
        return {"data": {}}
    return {"data": {"email": EMAILS[role], "password": PASSWORD}}


def _api_credentials(role, world):
    if role == "anonymous":
        return {"json": {}}
    return {"json": {"email": EMAILS[role], "password": PASSWORD}}


def _new_manifest(role, world):
    body = {"manifest": manifest("fresh-module", "1.0.0")}
    if role == "platform_admin":
        body["publisher"] = "acme"
    return {"json": body}


def _manifest_form(role, world):
    return {"data": {"manifest": manifest_yaml("fresh-module", "1.0.0")}}


def _same_release(role, world):
    return {"data": {"manifest": manifest_yaml("purchasing", "1.0.0")}}


def _approve(role, world):
    return {"json": {"status": "approved"}}


def _install_body(role, world):
    body = {"module": "inventory"}
    if role == "platform_admin":
        body["company"] = "acme"
    return {"json": body}


def _new_endpoint(role, world):
    return {"json": {"endpoint_url": "http://ledger.acme.internal:9000"}}


def _new_description(role, world):
    return {"json": {"description": "Now with more purchasing."}}


# "METHOD rule": (expected statuses in ROLES order, request kwargs builder or None)
ROUTES: dict[str, tuple[tuple[int, ...], object]] = {
    "GET /health": ((200, 200, 200, 200, 200), None),
    "GET /health/live": ((200, 200, 200, 200, 200), None),
    "GET /health/ready": ((200, 200, 200, 200, 200), None),
    "GET /info": ((200, 200, 200, 200, 200), None),
    "GET /login": ((200, 200, 200, 200, 200), None),
    "POST /login": ((422, 303, 303, 303, 303), _own_credentials),
    "GET /logout": ((302, 200, 200, 200, 200), None),
    "POST /logout": ((302, 303, 303, 303, 303), None),
    "GET /": ((302, 200, 200, 200, 200), None),
    "GET /tokens": ((302, 200, 200, 200, 200), None),
    "POST /tokens": ((302, 201, 201, 201, 201), lambda r, w: {"data": {"name": "ci"}}),
    # The token belongs to the owning company's admin: nobody else may revoke it.
    "POST /tokens/<int:token_id>/revoke": ((302, 404, 303, 404, 404), None),
    "POST /api/v1/auth/token": ((422, 200, 200, 200, 200), _api_credentials),
    "GET /api/v1/events": ((401, 200, 200, 200, 200), None),
    "GET /api/v1/events/": ((401, 200, 200, 200, 200), None),
    # Publishing: developers for their company, platform admins naming the publisher.
    "POST /api/v1/modules/": ((401, 201, 403, 403, 201), _new_manifest),
    "POST /api/v1/modules": ((401, 201, 403, 403, 201), _new_manifest),
    "GET /api/v1/modules/": ((401, 200, 200, 200, 200), None),
    "GET /api/v1/modules": ((401, 200, 200, 200, 200), None),
    # The world's release is acme's and pending: globex cannot see it at all.
    "GET /api/v1/modules/<int:module_id>": ((401, 200, 200, 404, 200), None),
    "PUT /api/v1/modules/<int:module_id>": ((401, 200, 403, 404, 200), _new_description),
    "DELETE /api/v1/modules/<int:module_id>": ((401, 204, 403, 404, 204), None),
    "GET /api/v1/modules/<int:module_id>/package": ((401, 200, 200, 404, 200), None),
    "PATCH /api/v1/modules/<int:module_id>/status": ((401, 403, 403, 404, 200), _approve),
    "POST /api/v1/modules/validate-manifest": ((401, 200, 200, 200, 200), _new_manifest),
    "GET /api/v1/schemas/manifest.json": ((200, 200, 200, 200, 200), None),
    # Installations: each company admin acts for their own company; admins name one.
    "POST /api/v1/installations/plan": ((401, 403, 200, 200, 200), _install_body),
    "POST /api/v1/installations/": ((401, 403, 201, 201, 201), _install_body),
    "POST /api/v1/installations": ((401, 403, 201, 201, 201), _install_body),
    "GET /api/v1/installations/": ((401, 403, 200, 200, 200), None),
    "GET /api/v1/installations": ((401, 403, 200, 200, 200), None),
    # The world's installation is acme's: globex and developers get 404, as if absent.
    "GET /api/v1/installations/<int:installation_id>": ((401, 404, 200, 404, 200), None),
    "PUT /api/v1/installations/<int:installation_id>": ((401, 404, 200, 404, 200), _new_endpoint),
    "DELETE /api/v1/installations/<int:installation_id>": ((401, 404, 204, 404, 204), None),
    "GET /api/v1/installations/<int:installation_id>/revisions": (
        (401, 404, 200, 404, 200),
        None,
    ),
    # Revision 1 has nothing earlier to return to: allowed callers get the 422.
    "POST /api/v1/installations/<int:installation_id>/rollback": (
        (401, 404, 422, 404, 422),
        lambda r, w: {"json": {}},
    ),
    # The world's installation has no endpoint_url: allowed callers get the 409.
    "POST /api/v1/installations/<int:installation_id>/health-check": (
        (401, 404, 409, 404, 409),
        None,
    ),
    # Runtime endpoints: any token of the owning company; platform admins 403.
    "GET /api/v1/installations/<int:installation_id>/config": ((401, 200, 200, 404, 403), None),
    "POST /api/v1/installations/<int:installation_id>/heartbeat": (
        (401, 204, 204, 404, 403),
        lambda r, w: {"json": {"status": "healthy"}},
    ),
    # Developer pages: the role decides first (403), then the release's company (404).
    "GET /publish": ((302, 200, 403, 403, 403), None),
    "POST /publish/validate": ((302, 200, 403, 403, 403), _manifest_form),
    "POST /publish": ((302, 303, 403, 403, 403), _manifest_form),
    "GET /publish/releases/<int:module_id>/resubmit": ((302, 200, 403, 403, 403), None),
    "POST /publish/releases/<int:module_id>/resubmit": ((302, 303, 403, 403, 403), _same_release),
    "GET /modules/<name>": ((302, 200, 200, 404, 200), None),
    # The page's package download (session, not bearer): the world's release is acme's.
    "GET /modules/<name>/<version>/package": ((302, 200, 200, 404, 200), None),
    # The event log: admins all, company admins their company's; developers 403.
    "GET /activity": ((302, 403, 200, 200, 200), None),
    # The approval queue: platform admins only; the world's release is a developer's upload.
    "GET /admin/queue": ((302, 403, 403, 403, 200), None),
    "GET /admin/queue/<int:module_id>": ((302, 403, 403, 403, 200), None),
    "POST /admin/queue/<int:module_id>/approve": ((302, 403, 403, 403, 303), None),
    "POST /admin/queue/<int:module_id>/reject": (
        (302, 403, 403, 403, 303),
        lambda r, w: {"data": {"reason": "Describe the configuration."}},
    ),
    # Install pages: company admins for their own company, platform admins for any (they pick
    # one first). The world's `name` is acme's *pending* release, which nobody can install:
    # company admins get 404, as if absent; a platform admin without a company gets the
    # company picker (GET) or 422 (POST: no company named). Developers: 403 (role first).
    "GET /modules/<name>/install": ((302, 403, 404, 404, 200), None),
    "POST /modules/<name>/install": ((302, 403, 404, 404, 422), None),
    "POST /modules/<name>/install/validate": ((302, 403, 404, 404, 422), None),
    # A company's installations: its own admins and platform admins; others 404; developers 403.
    "GET /company/<slug>/installations": ((302, 403, 200, 404, 200), None),
    # The control room's fragment and panels: the same callers; the world's installation is
    # acme's ledger at revision 1 (no configuration schema, nothing depends on it).
    "GET /company/<slug>/installations/health": ((302, 403, 200, 404, 200), None),
    "GET /company/<slug>/installations/<int:installation_id>/configure": (
        (302, 403, 200, 404, 200),
        None,
    ),
    # Nothing changes (no schema, no endpoint): allowed callers are sent back to the list.
    "POST /company/<slug>/installations/<int:installation_id>/configure": (
        (302, 403, 303, 404, 303),
        lambda r, w: {"data": {"revision": "1"}},
    ),
    "POST /company/<slug>/installations/<int:installation_id>/configure/validate": (
        (302, 403, 200, 404, 200),
        lambda r, w: {"data": {"revision": "1"}},
    ),
    "GET /company/<slug>/installations/<int:installation_id>/version": (
        (302, 403, 200, 404, 200),
        None,
    ),
    "POST /company/<slug>/installations/<int:installation_id>/version": (
        (302, 403, 303, 404, 303),
        lambda r, w: {"data": {"version": "1.0.0", "revision": "1"}},
    ),
    "GET /company/<slug>/installations/<int:installation_id>/history": (
        (302, 403, 200, 404, 200),
        None,
    ),
    # Revision 1 has nothing earlier to return to: allowed callers get the 422.
    "POST /company/<slug>/installations/<int:installation_id>/rollback": (
        (302, 403, 422, 404, 422),
        lambda r, w: {"data": {"revision": "1"}},
    ),
    "GET /company/<slug>/installations/<int:installation_id>/uninstall": (
        (302, 403, 200, 404, 200),
        None,
    ),
    "POST /company/<slug>/installations/<int:installation_id>/uninstall": (
        (302, 403, 303, 404, 303),
        None,
    ),
    "GET /api/v1/openapi.json": ((200,) * 5, None),
    "GET /docs": ((200,) * 5, None),
    "GET /redoc": ((200,) * 5, None),
}
EXEMPT_ENDPOINTS = {"static"}


def _app_routes(app) -> set[str]:
    keys = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in EXEMPT_ENDPOINTS:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            keys.add(f"{method} {rule.rule}")
    return keys


def test_every_route_is_in_the_table(app):
    routes = _app_routes(app)
    assert routes - set(ROUTES) == set(), "routes missing from the access table"
    assert set(ROUTES) - routes == set(), "table rows for routes that no longer exist"


def _world(app) -> SimpleNamespace:
    """The resources the parametrized paths point at, owned by acme."""
    with app.app_context():
        make_people()
        token, _plain = users.create_api_token(users.user_by_email(EMAILS["owner_admin"]), "t")
        release = publish_package(
            zip_package(manifest_yaml("purchasing", "1.0.0")), actor_email=EMAILS["developer"]
        )
        approved_release("ledger", actor_email=EMAILS["developer"])
        approved_release("inventory", actor_email=EMAILS["developer"])
        installation, _deps = install_module(
            InstallRequest(module="ledger"), actor=users.user_by_email(EMAILS["owner_admin"])
        )
        world = SimpleNamespace(
            installation_id=installation.id,
            token_id=token.id,
            module_id=release.id,
            name=release.name,
            slug="acme",
            version=release.version,
        )
        db.session.remove()
    return world


def _fill(rule: str, world: SimpleNamespace) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: str(getattr(world, m.group(1))), rule)


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("role", ROLES)
def test_route_answers_each_role_as_the_table_says(app, route, role):
    expected_statuses, build = ROUTES[route]
    world = _world(app)
    method, rule = route.split(" ", 1)
    path = _fill(rule, world)
    client = app.test_client()
    kwargs = build(role, world) if build else {}
    headers = {}
    if role != "anonymous":
        if path.startswith("/api/"):
            headers = bearer(app, EMAILS[role])
        else:
            login(client, EMAILS[role])
    resp = client.open(path, method=method, headers=headers, **kwargs)
    expected = expected_statuses[ROLES.index(role)]
    assert resp.status_code == expected, f"{route} as {role}: {resp.get_data(as_text=True)[:300]}"
