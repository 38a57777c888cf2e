"""The OpenAPI 3.1 document (generated from the URL map and @document) and its viewers."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from flask import Blueprint, Flask

from portal import create_app
from portal.api.openapi import build_openapi, component, document, id_parameter, page_of
from portal.config import TestConfig
from portal.extensions import db
from portal.web.platform import docs
from tests.helpers import bearer

SKIPPED = {"HEAD", "OPTIONS"}


@pytest.fixture(scope="module")
def docs_app(app, database_url, storage_dir):
    """The app with the docs blueprint.

    TEMPORARY until create_app() registers docs.bp: register it on the session app if that
    app has not answered a request yet (so tests/test_route_matrix.py sees the routes when
    run after this module), else on an app of its own. Once registered, this is `app`.
    """
    if "docs" in app.blueprints:
        yield app
        return
    if not app._got_first_request:
        app.register_blueprint(docs.bp)
        yield app
        return
    own = create_app(
        TestConfig(
            database_url,
            MODULE_STORAGE_PATH=str(storage_dir / "packages"),
            INSTANCE_PATH=str(storage_dir / "instance"),
        )
    )
    own.register_blueprint(docs.bp)
    yield own
    with own.app_context():
        db.engine.dispose()


@pytest.fixture(scope="module")
def doc(docs_app) -> dict:
    return build_openapi(docs_app)


def _full_path(rule: str) -> str:
    """/api/v1/modules/<int:module_id> → /api/v1/modules/{module_id}, independently of the code."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _coverage_problems(app: Flask, doc: dict) -> list[str]:
    """Every /api/ rule and method that the document lacks or marks as undocumented."""
    problems = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        for method in sorted(rule.methods - SKIPPED):
            operation = doc["paths"].get(_full_path(rule.rule), {}).get(method.lower())
            if operation is None:
                problems.append(f"{method} {rule.rule} is missing")
            elif operation.get("x-undocumented"):
                problems.append(f"{method} {rule.rule} ({rule.endpoint}) lacks @document")
    return problems


def test_the_document_is_valid_openapi_3_1(doc):
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "Module Registry API"


def test_every_api_route_is_documented_under_its_full_path_and_method(docs_app, doc):
    problems = _coverage_problems(docs_app, doc)
    assert not problems, "\n".join(["routes missing from the OpenAPI document:", *problems])


def test_paths_are_written_in_full_and_only_api_routes_are_there(doc):
    assert doc["paths"], "no paths at all"
    assert all(path.startswith("/api/v1/") for path in doc["paths"])
    assert {"/api/v1/events", "/api/v1/events/", "/api/v1/auth/token"} <= set(doc["paths"])
    assert "/api/v1/openapi.json" in doc["paths"]


def test_operation_ids_are_unique(doc):
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_the_token_endpoint_needs_no_token_and_the_events_need_the_bearer(doc):
    token = doc["paths"]["/api/v1/auth/token"]["post"]
    assert token["security"] == []
    assert "application/json" in token["requestBody"]["content"]
    events = doc["paths"]["/api/v1/events"]["get"]
    assert events["security"] == [{"bearer": []}]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_events_list_documents_the_filters_and_paging_of_api_md(doc):
    events = doc["paths"]["/api/v1/events"]["get"]
    names = {p["name"] for p in events["parameters"] if p["in"] == "query"}
    assert names == {"type", "company", "module", "after_id", "page", "per_page"}
    page = events["responses"]["200"]["content"]["application/json"]["schema"]
    envelope = doc["components"]["schemas"][page["$ref"].rsplit("/", 1)[1]]
    assert set(envelope["required"]) == {"items", "page", "per_page", "total"}


def test_error_responses_are_problem_json(doc):
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    content = response.get("content", {})
                    assert list(content) == ["application/problem+json"], (path, method, status)
    problem = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])


def _toy_app() -> Flask:
    """An app with one documented collection and two undocumented views."""
    app = Flask(__name__)
    bp = Blueprint("toy", __name__, url_prefix="/api/v1")
    thing = component("Thing", {"type": "object", "properties": {"id": {"type": "integer"}}})

    @bp.get("/things/")
    @bp.post("/things/")
    @document(summary="Things", tags=["Things"], responses={200: page_of(thing)})
    def things():
        return ""

    @bp.get("/things/<int:thing_id>")
    @document(
        summary="One thing",
        tags=["Things"],
        parameters=[id_parameter("thing_id", "Which thing.")],
        responses={200: thing, 404: "No such thing."},
    )
    def show(thing_id):
        return ""

    @bp.delete("/things/<int:thing_id>/parts/<name>")
    def remove_part(thing_id, name):
        return ""

    app.register_blueprint(bp)
    app.add_url_rule("/elsewhere", "elsewhere", lambda: "")
    return app


def test_a_view_without_document_is_listed_and_marked_so_the_coverage_test_fails():
    app = _toy_app()
    doc = build_openapi(app)
    operation = doc["paths"]["/api/v1/things/{thing_id}/parts/{name}"]["delete"]
    assert operation["x-undocumented"] is True
    assert _coverage_problems(app, doc) == [
        "DELETE /api/v1/things/<int:thing_id>/parts/<name> (toy.remove_part) lacks @document"
    ]
    assert "/elsewhere" not in doc["paths"]


def test_rule_arguments_become_typed_path_parameters_without_duplicates():
    doc = build_openapi(_toy_app())
    show = doc["paths"]["/api/v1/things/{thing_id}"]["get"]
    assert show["parameters"] == [id_parameter("thing_id", "Which thing.")]
    parts = doc["paths"]["/api/v1/things/{thing_id}/parts/{name}"]["delete"]
    schemas = {p["name"]: p["schema"] for p in parts["parameters"]}
    assert schemas == {"thing_id": {"type": "integer"}, "name": {"type": "string"}}
    assert set(doc["paths"]["/api/v1/things/"]) == {"get", "post"}
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)


def test_two_different_schemas_cannot_share_a_component_name():
    app = Flask(__name__)
    first = component("Clash", {"type": "object"})
    second = component("Clash", {"type": "string"})
    app.add_url_rule(
        "/api/v1/a", "a", document(summary="a", tags=["x"], responses={200: first})(lambda: "")
    )
    app.add_url_rule(
        "/api/v1/b", "b", document(summary="b", tags=["x"], responses={200: second})(lambda: "")
    )
    with pytest.raises(ValueError, match="Clash"):
        build_openapi(app)


def test_the_served_document_needs_no_token_and_is_the_generated_one(docs_app, doc):
    client = docs_app.test_client()
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    assert resp.get_json() == doc
    again = client.get("/api/v1/openapi.json", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304


def test_the_served_document_ignores_a_bearer_token(docs_app, people):
    client = docs_app.test_client()
    resp = client.get("/api/v1/openapi.json", headers=bearer(docs_app, people.developer.email))
    assert resp.status_code == 200


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in {"src", "href"} and value:
                self.urls.append(value)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_their_assets_from_our_own_static_files(docs_app, page):
    client = docs_app.test_client()
    resp = client.get(page)
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html
    assert "/api/v1/openapi.json" in html
    parser = _Assets()
    parser.feed(html)
    assert parser.urls, "the page loads no assets"
    assert any(url.startswith("/static/vendor/") for url in parser.urls)
    for url in parser.urls:
        assert url.startswith("/static/"), url  # vendored viewers, our own bootstrap
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.content_length, url
        asset.close()
