"""A bounded property-based fuzz of the published OpenAPI document (schemathesis), per role.

For every operation of /api/v1/openapi.json, schemathesis generates requests that fit the
document (positive) and requests that break it (negative); each is sent through the WSGI
app, on the test database, with the bearer token of a developer, a company admin and a
platform admin. Every answer must be a documented status, with a documented content type
and a body that conforms to the documented schema, and never a 5xx.

Path ids are drawn half the time from rows that exist, so the fuzz reaches past the 404.
Bounded: FUZZ_EXAMPLES examples per operation, mode and role (default 20). `make fuzz` runs
it on PostgreSQL; the default `make test` leaves it out (`-m "not fuzz"`).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from portal.api.openapi import build_openapi
from portal.extensions import db
from tests.helpers import approved_release, approved_shelf, bearer

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
ROLES = {
    "developer": "dev@acme.test",
    "company_admin": "admin@acme.test",
    "platform_admin": "admin@example.com",
}
# Path parameters filled from existing rows (half the time), by name.
ID_PARAMETERS = {"module_id": "modules", "installation_id": "installations"}


@pytest.fixture
def rows(app, people, client) -> dict[str, list[int]]:
    """Approved releases of both companies and an installation of acme's, to aim ids at."""
    with app.app_context():
        shelf = approved_shelf({"1.0.0": None, "2.0.0": None}, {"type": "object"})
        other = approved_release("globex-tool", "1.0.0", actor_email=people.globex_dev.email)
        modules = [*shelf.values(), other.id]
        db.session.remove()
    resp = client.post(
        "/api/v1/installations/",
        json={"module": "notes"},
        headers=bearer(app, people.acme_admin.email),
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return {"modules": modules, "installations": [resp.get_json()["id"]]}


def _fuzz_operation(operation, mode, headers, rows, outcomes: Counter, failures: list) -> None:
    strategy = operation.as_strategy(generation_mode=mode)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, data=st.data())
    def run(case, data):
        for name, table in ID_PARAMETERS.items():
            if name in (case.path_parameters or {}) and rows[table] and data.draw(st.booleans()):
                case.path_parameters[name] = data.draw(st.sampled_from(rows[table]))
        outcomes["examples"] += 1
        where = f"{case.method} {case.formatted_path} ({mode})"
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # TESTING propagates what would be a 500
            failures.append(f"{where}: raised {type(exc).__name__}: {exc}"[:400])
            return
        outcomes[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except BaseException as exc:  # schemathesis's FailureGroup is a BaseExceptionGroup
            if not isinstance(exc, Exception | BaseExceptionGroup):
                raise
            for failure in getattr(exc, "exceptions", [exc]):
                title = getattr(failure, "title", type(failure).__name__)
                detail = " ".join(str(getattr(failure, "message", failure)).split())[:160]
                failures.append(f"{where} → {response.status_code}: {title}: {detail}")

    try:
        run()
    except Unsatisfiable:  # nothing to break (negative mode of an operation without inputs)
        outcomes["unsatisfiable"] += 1


@pytest.mark.parametrize("role", list(ROLES))
def test_every_operation_answers_as_documented_for_the_role(app, rows, role):
    schema = schemathesis.openapi.from_dict(build_openapi(app))
    schema.app = app
    headers = bearer(app, ROLES[role])
    outcomes: Counter = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(operation, mode, headers, rows, outcomes, failures)
    statuses = {k: v for k, v in outcomes.items() if isinstance(k, int)}
    print(f"\n{role}: {outcomes['examples']} examples, statuses {dict(sorted(statuses.items()))}")
    by_kind = Counter(
        failure.split(": ", 1)[0].replace(" (negative)", "").replace(" (positive)", "")
        for failure in failures
    )
    print(f"{role}: {len(failures)} failing examples, {len(by_kind)} kinds")
    assert not failures, "\n".join(
        [f"{n:4} x {kind}" for kind, n in sorted(by_kind.items())]
        + ["first of each:"]
        + sorted({f.split(": ", 1)[0]: f for f in failures}.values())
    )
