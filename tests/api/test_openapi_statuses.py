"""Every operation documents every status it can answer (issue 11, item 5): the generator
adds what the shared machinery answers, the views add the rest."""

from __future__ import annotations

from portal.api.openapi import build_openapi


def _operations(app):
    doc = build_openapi(app)
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_with_a_token_documents_401_and_503_with_retry_after(app):
    for where, operation in _operations(app):
        if operation.get("security"):
            assert {"401", "503"} <= set(operation["responses"]), where
            assert "Retry-After" in operation["responses"]["503"]["headers"], where


def test_every_operation_with_query_parameters_documents_the_400(app):
    for where, operation in _operations(app):
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert "400" in operation["responses"], where


def test_the_statuses_the_fuzz_found_undocumented_are_documented(app):
    ops = dict(_operations(app))
    assert {"403", "404"} <= set(ops["GET /api/v1/installations/"]["responses"])
    assert "403" in ops["POST /api/v1/installations/plan"]["responses"]
    schema_doc = ops["GET /api/v1/schemas/manifest.json"]["responses"]["200"]
    assert list(schema_doc["content"]) == ["application/schema+json"]
    token = ops["POST /api/v1/auth/token"]["responses"]
    assert {"400", "401", "413", "422", "429", "503"} <= set(token)
    assert "422" not in ops["POST /api/v1/modules/validate-manifest"]["responses"]


def test_an_id_past_the_database_range_is_a_404_not_a_422(app, client, people):
    from tests.helpers import bearer, problem_of

    headers = bearer(app, people.acme_admin.email)
    for url in ("/api/v1/modules/2147483648", "/api/v1/installations/99999999999999999999"):
        problem_of(client.get(url, headers=headers), 404)
