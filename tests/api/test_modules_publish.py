"""POST /api/v1/modules/ and /modules/validate-manifest through the real stack (test client,
real database, real package store). Every refusal answers the status api.md names, as
problem+json with pointers, and leaves no release row, event or file behind (spec/api.md,
publishing)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import tarfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from portal import create_app
from portal.config import TestConfig
from portal.extensions import db
from portal.models import Event, ModuleRelease, StatusChange
from tests import helpers
from tests import packaging as pkg
from tests.helpers import (
    bearer,
    count,
    empty_store,
    error_pointers,
    problem_of,
    registry_state,
    stored_files,
)

URL = "/api/v1/modules/"
VALIDATE = "/api/v1/modules/validate-manifest"
MIB = 1024 * 1024
MODULE_KEYS = {
    "id", "name", "version", "display_name", "description", "author", "category", "tags",
    "status", "status_reason", "visibility", "publisher", "manifest", "dependencies",
    "package", "created_at", "updated_at",
}  # fmt: skip
EMPTY = {"releases": 0, "dependencies": 0, "status_changes": 0, "events": 0, "files": []}


@pytest.fixture(autouse=True)
def _empty_store(app):
    empty_store(app)


@pytest.fixture
def dev(app, people):
    return bearer(app, people.developer.email)


@pytest.fixture
def globex(app, people):
    return bearer(app, people.globex_dev.email)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store_path(digest: str) -> str:
    return f"{digest[:2]}/{digest[2:4]}/{digest}"


def upload(client, headers, package=None, filename="purchasing.zip", url=URL, **fields):
    """A multipart POST: `package` bytes as a file part, other fields as given (a tuple
    (bytes, filename) is sent as a file)."""
    data = {k: (io.BytesIO(v[0]), v[1]) if isinstance(v, tuple) else v for k, v in fields.items()}
    if package is not None:
        data["package"] = (io.BytesIO(package), filename)
    return client.post(url, data=data, headers=headers, content_type="multipart/form-data")


def assert_nothing_stored(app) -> None:
    assert registry_state(app) == EMPTY


def assert_has_line_and_column(body: dict) -> None:
    texts = [body["detail"], *(e["message"] for e in body.get("errors", []))]
    assert any(re.search(r"line \d+, column \d+", t) for t in texts), texts


# --- Success paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, folder, kind",
    [
        (pkg.zip_package, "", "zip"),
        (pkg.zip_package, "purchasing-1.0.0", "zip"),
        (pkg.tar_package, "", "tar.gz"),
        (pkg.tar_package, "purchasing", "tar.gz"),
    ],
    ids=["zip-root", "zip-folder", "tar-root", "tar-folder"],
)
def test_a_package_upload_registers_a_pending_public_release_of_the_developers_company(
    app, client, dev, build, folder, kind
):
    data = build(pkg.manifest_yaml(), folder=folder)
    resp = upload(client, dev, data, filename=f"upload.{kind}")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == MODULE_KEYS
    assert resp.headers["Location"].endswith(f"/api/v1/modules/{body['id']}")
    assert (body["name"], body["version"]) == ("purchasing", "1.0.0")
    assert (body["status"], body["status_reason"]) == ("pending", None)
    assert (body["visibility"], body["publisher"]) == ("public", "acme")
    assert body["package"] == {
        "filename": f"purchasing-1.0.0.{kind}",
        "size": len(data),
        "sha256": sha(data),
    }
    assert body["manifest"]["description"] == "purchasing for XERPIUM"
    assert body["dependencies"] == []
    assert body["created_at"].endswith("Z")
    # Stored once, by digest; the temp folder is empty again.
    assert stored_files(app) == [store_path(sha(data))]
    with app.app_context():
        release = db.session.get(ModuleRelease, body["id"])
        assert release.scan_report["manifest_path"] == (
            f"{folder}/module.yaml" if folder else "module.yaml"
        )
        (event,) = db.session.execute(db.select(Event)).scalars()
        assert (event.type, event.company, event.module, event.version) == (
            "module.registered",
            "acme",
            "purchasing",
            "1.0.0",
        )
        assert event.module_id == body["id"] and event.actor == "dev@acme.test"
        (change,) = db.session.execute(db.select(StatusChange)).scalars()
        assert (change.from_status, change.to_status) == (None, "pending")
        db.session.remove()


MANIFEST_FORMS = ("multipart text", "multipart file", "json object", "json yaml")
DEPENDENCIES = [{"name": "business-core", "version": "^1.2"}]
NORMALIZED_DEPENDENCIES = [
    {"name": "business-core", "version": "^1.2", "type": "module", "optional": False}
]


def _manifest_as(form: str, name: str = "purchasing") -> dict:
    """Keyword arguments for client.post carrying a manifest in one of api.md's forms."""
    text = pkg.manifest_yaml(name, dependencies=DEPENDENCIES)
    return {
        "multipart text": {"data": {"manifest": text}},
        "multipart file": {"data": {"manifest": (io.BytesIO(text.encode()), "module.yaml")}},
        "json object": {"json": {"manifest": pkg.manifest(name, dependencies=DEPENDENCIES)}},
        "json yaml": {"json": {"manifest_yaml": text}},
    }[form]


def test_a_manifest_alone_registers_a_release_in_every_form_with_or_without_slash(
    app, client, dev, subtests
):
    cases = [(form, path) for form in MANIFEST_FORMS for path in (URL, URL.rstrip("/"))]
    for n, (form, path) in enumerate(cases, start=1):
        with subtests.test(form=form, path=path):
            resp = client.post(path, headers=dev, **_manifest_as(form, f"module-{n}"))
            assert resp.status_code == 201, resp.get_data(as_text=True)
            body = resp.get_json()
            assert set(body) == MODULE_KEYS
            assert body["name"] == f"module-{n}" and body["package"] is None
            assert body["dependencies"] == NORMALIZED_DEPENDENCIES
            assert resp.headers["Location"].endswith(f"/api/v1/modules/{body['id']}")
            assert stored_files(app) == []
            with app.app_context():
                assert count(ModuleRelease) == n
                event = db.session.execute(
                    db.select(Event).where(Event.module_id == body["id"])
                ).scalar_one()
                assert (event.type, event.company) == ("module.registered", "acme")
                db.session.remove()


def test_a_package_with_a_matching_separate_manifest_takes_the_separate_one(client, dev):
    data = pkg.zip_package(pkg.manifest_yaml())
    separate = pkg.manifest_yaml(description="Said better in the form")
    resp = upload(client, dev, data, manifest=separate, visibility="private")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["description"] == "Said better in the form"
    assert body["visibility"] == "private"
    assert body["package"]["sha256"] == sha(data)


def test_a_tar_gz_named_zip_is_accepted_because_its_content_decides(client, dev):
    data = pkg.tar_package(pkg.manifest_yaml())
    resp = upload(client, dev, data, filename="purchasing.zip")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["package"]["filename"] == "purchasing-1.0.0.tar.gz"


def test_the_expected_sha256_in_upper_case_is_accepted(client, dev):
    data = pkg.zip_package(pkg.manifest_yaml())
    resp = upload(client, dev, data, sha256=sha(data).upper())
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["package"]["sha256"] == sha(data)


def test_a_platform_admin_names_the_publisher_company(app, client, people):
    resp = client.post(
        URL,
        json={"manifest": pkg.manifest(), "publisher": "globex"},
        headers=bearer(app, people.admin.email),
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["publisher"] == "globex"
    with app.app_context():
        assert db.session.execute(db.select(Event.company)).scalar_one() == "globex"
        db.session.remove()


def test_a_developer_may_name_their_own_company_as_publisher(client, dev):
    resp = client.post(URL, json={"manifest": pkg.manifest(), "publisher": "acme"}, headers=dev)
    assert resp.status_code == 201, resp.get_data(as_text=True)


# --- Manifests the YAML reader refuses: 400 with line and column -----------------------------

BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{x}: &{x} [{','.join([f'*{prev}'] * 9)}]"
            for prev, x in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "name: purchasing",
        "version: 1.0.0",
        "description: *i",
        "author: me",
    ]
)
UNREADABLE_YAML = {
    "syntax error": "name: purchasing\nversion: [1.0.0\ndescription: d\nauthor: a\n",
    "python tag": (
        "name: !!python/object/apply:os.system ['touch {marker}']\n"
        "version: 1.0.0\ndescription: d\nauthor: a\n"
    ),
    "alias bomb": BILLION_LAUGHS,
}
YAML_FORMS = ("multipart text", "multipart file", "json yaml", "package")


def send_yaml(client, headers, text: str, form: str, url: str = URL):
    """POST manifest YAML as multipart text, as a multipart file, as JSON `manifest_yaml`,
    or as the module.yaml of a zip package."""
    if form == "multipart text":
        return upload(client, headers, url=url, manifest=text)
    if form == "multipart file":
        return upload(client, headers, url=url, manifest=(text.encode(), "module.yaml"))
    if form == "json yaml":
        return client.post(url, json={"manifest_yaml": text}, headers=headers)
    return upload(client, headers, pkg.zip_package(text), url=url)


def test_unreadable_yaml_is_a_400_with_line_and_column_and_stores_nothing(
    app, client, dev, tmp_path, subtests
):
    marker = tmp_path / "pwned"
    for case, template in UNREADABLE_YAML.items():
        for form in YAML_FORMS:
            with subtests.test(case=case, form=form):
                text = template.replace("{marker}", str(marker))
                started = time.monotonic()
                resp = send_yaml(client, dev, text, form)
                elapsed = time.monotonic() - started
                assert_has_line_and_column(problem_of(resp, 400))
                assert elapsed < 1.0, f"answered in {elapsed:.2f}s"
                assert not marker.exists()
                assert_nothing_stored(app)


def test_a_python_tag_and_an_alias_are_named_where_they_are(client, dev):
    body = problem_of(upload(client, dev, manifest=UNREADABLE_YAML["python tag"]), 400)
    assert "python/object/apply:os.system" in body["detail"]
    assert "line 1, column 7" in body["detail"]
    body = problem_of(upload(client, dev, manifest=BILLION_LAUGHS), 400)
    assert "line 1, column 4" in body["detail"]  # the first anchor, before any expansion


# --- Invalid manifests: 422 with pointers -----------------------------------------------------


def _deep_json_schema(levels: int) -> str:
    """A config_schema nested `levels` deep, as JSON text (too deep to build with json)."""
    return '{"type": "object", "properties": {"a": ' * levels + "{}" + "}}" * levels


_M = pkg.manifest_yaml
INVALID_MANIFESTS = {
    "duplicate key": (
        "name: purchasing\nversion: 1.0.0\nname: again\ndescription: d\nauthor: a\n",
        ["/name"],
    ),
    "unknown top-level key": (_M(colour="red"), ["/colour"]),
    "invalid name": (_M(name="Purchasing_Module"), ["/name"]),
    "invalid version": (_M(version="1.0"), ["/version"]),
    "invalid constraint": (
        _M(dependencies=[{"name": "business-core", "version": ">>1.0"}]),
        ["/dependencies/0/version"],
    ),
    "endpoint method": (
        _M(endpoints=[{"path": "/x", "method": "FETCH", "handler": "m.h:get"}]),
        ["/endpoints/0/method"],
    ),
    "dotted path": (
        _M(
            entry_points={"main": "not a path"},
            endpoints=[{"path": "/x", "method": "GET", "handler": "m/h.py"}],
        ),
        ["/endpoints/0/handler", "/entry_points/main"],
    ),
    "config_schema not an object schema": (
        _M(config_schema={"type": "string"}),
        ["/config_schema/type"],
    ),
    "config_schema invalid": (
        _M(config_schema={"type": "object", "properties": {"a": {"type": "nope"}}}),
        ["/config_schema/properties/a/type"],
    ),
    "config_schema pattern": (
        _M(config_schema={"type": "object", "properties": {"a": {"pattern": "(["}}}),
        ["/config_schema/properties/a/pattern"],
    ),
    "config_schema 3000 deep (block YAML)": (
        _M().rstrip() + "\nconfig_schema:\n  type: object\n  x-deep:\n    " + "- " * 3000 + "1\n",
        ["/config_schema"],
    ),
    "several at once": (
        _M(name="x", version="01.0.0", tags=["Not A Slug"]),
        ["/name", "/tags/0", "/version"],
    ),
}


def test_an_invalid_manifest_is_a_422_with_pointers_and_stores_nothing(app, client, dev, subtests):
    for case, (text, expected) in INVALID_MANIFESTS.items():
        for form in ("multipart text", "package"):
            with subtests.test(case=case, form=form):
                body = problem_of(send_yaml(client, dev, text, form), 422)
                assert sorted(error_pointers(body)) == expected, body["errors"]
                assert all(e["message"] for e in body["errors"])
                assert_nothing_stored(app)


def test_validate_manifest_reports_the_same_pointers_with_200(app, client, dev, subtests):
    for case, (text, expected) in INVALID_MANIFESTS.items():
        with subtests.test(case=case):
            resp = upload(client, dev, url=VALIDATE, manifest=text)
            assert resp.status_code == 200, resp.get_data(as_text=True)
            body = resp.get_json()
            assert body["valid"] is False
            assert sorted(error_pointers(body)) == expected
            assert_nothing_stored(app)


def test_an_unquoted_version_1_10_is_refused_with_a_hint_to_quote_it(app, client, dev):
    text = "name: purchasing\nversion: 1.10\ndescription: d\nauthor: a\n"
    body = problem_of(upload(client, dev, manifest=text), 422)
    (error,) = body["errors"]
    assert error["pointer"] == "/version"
    assert "quote" in error["message"] and "1.10" in error["message"]
    assert_nothing_stored(app)


def test_a_config_schema_3000_levels_deep_as_json_is_a_422_not_a_crash(app, client, dev):
    body_text = json.dumps({"manifest": pkg.manifest(config_schema="DEEP")}).replace(
        '"DEEP"', _deep_json_schema(3000)
    )
    for url in (URL, VALIDATE):
        resp = client.post(url, data=body_text, content_type="application/json", headers=dev)
        if url == URL:
            body = problem_of(resp, 422)
        else:
            assert resp.status_code == 200
            body = resp.get_json()
            assert body["valid"] is False
        assert error_pointers(body) == ["/config_schema"]
    assert_nothing_stored(app)


def test_a_manifest_sent_as_json_reports_the_same_pointers(app, client, dev):
    manifest = pkg.manifest(
        name="Bad Name", dependencies=[{"name": "business-core", "version": "~>1"}]
    )
    body = problem_of(client.post(URL, json={"manifest": manifest}, headers=dev), 422)
    assert sorted(error_pointers(body)) == ["/dependencies/0/version", "/name"]
    assert_nothing_stored(app)


# --- Outside references in config_schema: refused, never fetched ------------------------------


@pytest.fixture
def counting_server():
    """A real HTTP server on a free local port that counts the requests it gets."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            payload = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/schema+json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}", hits=hits)
    server.shutdown()
    server.server_close()


def _ref_schemas(base: str) -> dict[str, tuple[dict, str]]:
    at_a = "/config_schema/properties/a/$ref"
    return {
        "http": ({"type": "object", "properties": {"a": {"$ref": f"{base}/x.json"}}}, at_a),
        "http root": ({"type": "object", "$ref": f"{base}/root.json"}, "/config_schema/$ref"),
        "relative to an http $id": (
            {"$id": f"{base}/s/", "type": "object", "properties": {"a": {"$ref": "x.json"}}},
            at_a,
        ),
        "file": ({"type": "object", "properties": {"a": {"$ref": "file:///etc/passwd"}}}, at_a),
    }  # fmt: skip


def test_an_outside_ref_in_config_schema_is_refused_and_never_fetched(
    app, client, dev, counting_server, subtests
):
    for case, (schema, pointer) in _ref_schemas(counting_server.url).items():
        for url in (URL, VALIDATE):
            with subtests.test(case=case, url=url):
                manifest = {"manifest": pkg.manifest(config_schema=schema)}
                resp = client.post(url, json=manifest, headers=dev)
                if url == VALIDATE:
                    assert resp.status_code == 200
                    body = resp.get_json()
                    assert body["valid"] is False
                else:
                    body = problem_of(resp, 422)
                assert pointer in error_pointers(body), body["errors"]
                assert counting_server.hits == []
                assert_nothing_stored(app)
    # The server does answer: it is only the registry that never asked.
    with urllib.request.urlopen(f"{counting_server.url}/x.json") as resp:
        assert resp.status == 200
    assert counting_server.hits == ["/x.json"]


def test_a_local_ref_in_config_schema_is_fine(client, dev):
    schema = {
        "type": "object",
        "$defs": {"key": {"type": "string", "minLength": 8}},
        "properties": {"api_key": {"$ref": "#/$defs/key"}},
    }
    resp = client.post(URL, json={"manifest": pkg.manifest(config_schema=schema)}, headers=dev)
    assert resp.status_code == 201, resp.get_data(as_text=True)


# --- Size: 413 --------------------------------------------------------------------------------

BIG_NOTE = "a" * (300 * 1024)
BIG_YAML = f"{pkg.manifest_yaml()}x-notes: {BIG_NOTE}\n"  # (safe_dump takes a second for it)


def test_a_300_kib_manifest_is_a_413_as_yaml_and_as_json(app, client, dev, subtests):
    for form in (*YAML_FORMS, "json object"):
        with subtests.test(form=form):
            if form == "json object":
                manifest = pkg.manifest(**{"x-notes": BIG_NOTE})
                resp = client.post(URL, json={"manifest": manifest}, headers=dev)
            else:
                resp = send_yaml(client, dev, BIG_YAML, form)
            problem_of(resp, 413)
            assert_nothing_stored(app)


@pytest.fixture
def small_app(app, database_url, tmp_path):
    """The same database, but MAX_MODULE_SIZE_MB=2 (and the request limit it implies), so
    size limits are tested with a few megabytes."""
    small = create_app(
        TestConfig(
            database_url,
            MAX_MODULE_SIZE_MB=2,
            MAX_CONTENT_LENGTH=3 * MIB,
            MODULE_STORAGE_PATH=str(tmp_path / "packages"),
            INSTANCE_PATH=str(tmp_path / "instance"),
        )
    )
    yield small
    with small.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_package_over_max_module_size_is_a_413_and_leaves_no_temp_file(
    small_app, people, subtests
):
    dev = bearer(small_app, people.developer.email)
    client = small_app.test_client()
    # 2.5 MB passes the request limit and is stopped while streaming to its temp file;
    # 3 MB is refused on its Content-Length before anything is read.
    for size in (int(2.5 * MIB), 3 * MIB):
        with subtests.test(size=size):
            data = pkg.zip_package(pkg.manifest_yaml(), files={"blob.bin": os.urandom(size)})
            body = problem_of(upload(client, dev, data), 413)
            assert "2 MB" in body["detail"]
            assert registry_state(small_app) == EMPTY


def test_a_package_just_under_max_module_size_is_accepted(small_app, people):
    dev = bearer(small_app, people.developer.email)
    data = pkg.zip_package(pkg.manifest_yaml(), files={"blob.bin": os.urandom(int(1.9 * MIB))})
    assert len(data) < 2 * MIB
    resp = upload(small_app.test_client(), dev, data)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert stored_files(small_app) == [store_path(sha(data))]


class MultipartBody(io.RawIOBase):
    """A multipart body with one `package` part of `size` zero bytes, produced as it is
    read (never in memory); `position` tells how far the server read."""

    def __init__(self, size: int, boundary: str = "upload-boundary-1234"):
        self.boundary = boundary
        self.head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="package"; filename="huge.zip"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.size = size
        self.total = len(self.head) + size + len(self.tail)
        self.position = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.position

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.total}[whence]
        self.position = base + offset
        return self.position

    def readinto(self, buffer):
        n = min(len(buffer), self.total - self.position)
        if n <= 0:
            return 0
        out = bytearray(n)
        # Zeros in the middle; copy in whatever part of the head or tail this read covers.
        for start, source in ((0, self.head), (len(self.head) + self.size, self.tail)):
            lo, hi = max(self.position, start), min(self.position + n, start + len(source))
            if lo < hi:
                out[lo - self.position : hi - self.position] = source[lo - start : hi - start]
        buffer[:n] = out
        self.position += n
        return n


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_60_mb_upload_against_the_default_limit_is_a_413_with_no_temp_file(
    app, client, dev, declared
):
    assert app.config["MAX_MODULE_SIZE_MB"] == 50
    stream = MultipartBody(60 * MIB)
    headers = dict(dev)
    overrides = {}
    if not declared:
        # As a server that terminates a chunked body itself would pass it on.
        headers["Transfer-Encoding"] = "chunked"
        overrides["wsgi.input_terminated"] = True
    resp = client.post(
        URL,
        input_stream=stream,
        content_type=f"multipart/form-data; boundary={stream.boundary}",
        headers=headers,
        environ_overrides=overrides,
    )
    body = problem_of(resp, 413)
    assert "50 MB" in body["detail"]
    if declared:
        assert stream.position == 0  # refused on the header, before reading anything
    else:
        # Streamed into the temp file and refused the moment it passed 50 MB.
        assert 50 * MIB < stream.position <= 51 * MIB + len(stream.head)
    assert_nothing_stored(app)


# --- Hostile and broken packages: 422 naming the entry, 415 for foreign content ----------------

MANIFEST = pkg.manifest_yaml().encode()
MAIN = ("src/main.py", b"def main():\n    return 1\n")


def _zip_with(*entries) -> bytes:
    return pkg.zip_of([("module.yaml", MANIFEST), *entries])


def _tgz_with(*members) -> bytes:
    return pkg.tar_gz_of([pkg.tar_member("module.yaml", MANIFEST), *members])


def _hostile_packages() -> dict[str, tuple[bytes, str]]:
    """name -> (package bytes, what the message must contain). Entry names are quoted with
    repr() in messages, so a backslash shows doubled."""
    tar, sym, lnk = pkg.tar_member, tarfile.SYMTYPE, tarfile.LNKTYPE
    many = [(f"f/{i}.txt", b"") for i in range(5000)]
    zeros = bytes(20 * MIB)
    return {
        "zip ../ entry": (_zip_with(("../evil.py", b"x")), "'../evil.py'"),
        "zip absolute path": (_zip_with(("/etc/evil", b"x")), "'/etc/evil'"),
        "zip backslash": (_zip_with(("src\\evil.py", b"x")), "'src\\\\evil.py'"),
        "zip symlink": (
            _zip_with((pkg.zip_special("link", stat.S_IFLNK), b"src/main.py"), MAIN),
            "'link': symbolic link",
        ),
        "zip device": (_zip_with((pkg.zip_special("dev", stat.S_IFCHR), b"")), "'dev'"),
        "tar ../ entry": (_tgz_with(tar("a/../../evil", b"x")), "'a/../../evil'"),
        "tar absolute path": (_tgz_with(tar("/tmp/evil", b"x")), "'/tmp/evil'"),
        "tar backslash": (_tgz_with(tar("..\\evil", b"x")), "'..\\\\evil'"),
        "tar symlink outside": (_tgz_with(tar("etc", type=sym, linkname="/etc")), "'etc'"),
        "tar symlink inside": (
            _tgz_with(tar(*MAIN), tar("main.py", type=sym, linkname="src/main.py")),
            "'main.py': symbolic link",
        ),
        "tar hard link": (
            _tgz_with(tar("copy.yaml", type=lnk, linkname="module.yaml")),
            "'copy.yaml': hard link",
        ),
        "tar device file": (
            _tgz_with(tar("null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)),
            "'null': device file",
        ),
        "zip 5001 entries": (_zip_with(*many), "more than 5000 entries"),
        "tar 5001 entries": (_tgz_with(*(tar(n, d) for n, d in many)), "more than 5000 entries"),
        "zip bomb": (_zip_with(("zeros.bin", zeros)), "compression ratio"),
        "tar.gz bomb": (_tgz_with(tar("zeros.bin", zeros)), "compression ratio"),
        "zip cut short": (pkg.zip_package(pkg.manifest_yaml())[:150], "not readable whole"),
        "tar.gz cut short": (
            pkg.tar_package(pkg.manifest_yaml(), files=dict([MAIN]))[:100],
            "not readable whole",
        ),
        "no module.yaml": (pkg.zip_of([MAIN]), "no module.yaml"),
        "module.yaml two folders down": (
            pkg.zip_package(pkg.manifest_yaml(), folder="a/b"),
            "no module.yaml",
        ),
    }


def test_a_hostile_or_broken_package_is_a_422_naming_the_problem(app, client, dev, subtests):
    for case, (data, needle) in _hostile_packages().items():
        with subtests.test(case=case):
            body = problem_of(upload(client, dev, data), 422)
            assert error_pointers(body) == ["/package"]
            assert needle in body["detail"], body["detail"]
            assert_nothing_stored(app)


def test_a_text_file_named_zip_is_a_415(app, client, dev):
    body = problem_of(upload(client, dev, b"just some text\n" * 10, filename="module.zip"), 415)
    assert error_pointers(body) == ["/package"]
    assert_nothing_stored(app)


def test_a_package_whose_manifest_disagrees_with_the_one_sent_is_a_422(app, client, dev):
    data = pkg.zip_package(pkg.manifest_yaml())
    separate = pkg.manifest_yaml(name="sales", version="2.0.0")
    body = problem_of(upload(client, dev, data, manifest=separate), 422)
    assert error_pointers(body) == ["/name", "/version"]
    assert "'1.0.0'" in body["errors"][1]["message"] and "'2.0.0'" in body["errors"][1]["message"]
    assert_nothing_stored(app)


def test_a_wrong_expected_sha256_is_a_422_and_names_both_digests(app, client, dev):
    data = pkg.zip_package(pkg.manifest_yaml())
    wrong = sha(b"something else")
    body = problem_of(upload(client, dev, data, sha256=wrong), 422)
    (error,) = body["errors"]
    assert error["pointer"] == "/sha256"
    assert wrong in error["message"] and sha(data) in error["message"]
    assert_nothing_stored(app)


def test_a_malformed_sha256_is_a_422(app, client, dev, subtests):
    data = pkg.zip_package(pkg.manifest_yaml())
    for value in ("abc", "g" * 64, "a" * 63, "a" * 65, " " + sha(data), sha(data) + "\n"):
        with subtests.test(value=value):
            body = problem_of(upload(client, dev, data, sha256=value), 422)
            assert error_pointers(body) == ["/sha256"]
            assert_nothing_stored(app)


# --- Names, versions and who publishes ---------------------------------------------------------


@pytest.fixture
def registry_core(app, client, dev):
    """acme's `registry-core` 1.0.0, published through the API."""
    resp = client.post(URL, json={"manifest": pkg.manifest("registry-core")}, headers=dev)
    assert resp.status_code == 201
    return resp.get_json()


def test_another_company_registering_a_look_alike_name_is_a_409(
    app, client, globex, registry_core, subtests
):
    before = registry_state(app)
    for name in ("registrycore", "reg1stry-core", "registry-c0re", "reglstry-core"):
        with subtests.test(name=name):
            resp = client.post(URL, json={"manifest": pkg.manifest(name)}, headers=globex)
            body = problem_of(resp, 409)
            assert error_pointers(body) == ["/name"]
            assert "registry-core" in body["detail"]
            assert registry_state(app) == before


def test_the_owner_may_publish_its_own_look_alike_names(client, dev, registry_core):
    resp = client.post(URL, json={"manifest": pkg.manifest("registrycore")}, headers=dev)
    assert resp.status_code == 201, resp.get_data(as_text=True)


def test_another_company_publishing_under_an_existing_name_is_a_403(
    app, client, globex, registry_core
):
    before = registry_state(app)
    data = pkg.zip_package(pkg.manifest_yaml("registry-core", "2.0.0"))
    body = problem_of(upload(client, globex, data), 403)
    assert "registry-core" in body["detail"]
    assert registry_state(app) == before


@pytest.mark.parametrize(
    "first, second", [("1.0.0", "1.0.0"), ("1.0.0+a", "1.0.0+b"), ("1.0.0", "1.0.0+build.7")]
)
def test_the_same_name_and_version_twice_is_a_409(app, client, dev, first, second):
    one = pkg.zip_package(pkg.manifest_yaml(version=first))
    assert upload(client, dev, one).status_code == 201
    before = registry_state(app)
    two = pkg.zip_package(pkg.manifest_yaml(version=second), files={"other.py": b"2"})
    body = problem_of(upload(client, dev, two), 409)
    assert error_pointers(body) == ["/version"]
    assert registry_state(app) == before


def test_a_developer_naming_another_company_as_publisher_is_a_422(app, client, dev):
    resp = client.post(URL, json={"manifest": pkg.manifest(), "publisher": "globex"}, headers=dev)
    body = problem_of(resp, 422)
    assert error_pointers(body) == ["/publisher"]
    assert_nothing_stored(app)


def test_a_platform_admin_without_a_known_publisher_is_a_422(app, client, people, subtests):
    headers = bearer(app, people.admin.email)
    for publisher in (None, "", "initech"):
        with subtests.test(publisher=publisher):
            data = {"manifest": pkg.manifest_yaml()}
            if publisher is not None:
                data["publisher"] = publisher
            body = problem_of(client.post(URL, data=data, headers=headers), 422)
            assert error_pointers(body) == ["/publisher"]
            assert_nothing_stored(app)


def test_a_company_admin_uploading_is_a_403(app, client, people, subtests):
    for who in ("acme_admin", "globex_admin"):
        with subtests.test(who=who):
            headers = bearer(app, getattr(people, who).email)
            resp = upload(client, headers, pkg.zip_package(pkg.manifest_yaml()))
            problem_of(resp, 403)
            assert_nothing_stored(app)


def test_an_upload_without_a_token_is_a_401_and_stores_nothing(app, client, people):
    resp = upload(client, {}, pkg.zip_package(pkg.manifest_yaml()))
    problem_of(resp, 401)
    assert_nothing_stored(app)


# --- Unreadable or unsupported requests ---------------------------------------------------------


def test_an_unreadable_json_body_is_a_400(app, client, dev, subtests):
    for payload in ("{not json", "[1, 2]", '"text"', "", b"\xff\xfe{}"):
        with subtests.test(payload=payload):
            resp = client.post(URL, data=payload, content_type="application/json", headers=dev)
            problem_of(resp, 400)
            assert_nothing_stored(app)


def test_a_text_plain_body_is_a_415(app, client, dev):
    resp = client.post(URL, data=pkg.manifest_yaml(), content_type="text/plain", headers=dev)
    problem_of(resp, 415)
    assert_nothing_stored(app)


def test_a_request_with_neither_package_nor_manifest_is_a_422(app, client, dev):
    body = problem_of(upload(client, dev, visibility="public"), 422)
    assert error_pointers(body) == ["/manifest"]
    assert_nothing_stored(app)


def test_an_unknown_visibility_is_a_422(app, client, dev):
    resp = upload(client, dev, pkg.zip_package(pkg.manifest_yaml()), visibility="secret")
    assert error_pointers(problem_of(resp, 422)) == ["/visibility"]
    body = {"manifest": pkg.manifest(), "visibility": "secret"}
    resp = client.post(URL, json=body, headers=dev)
    assert error_pointers(problem_of(resp, 422)) == ["/visibility"]
    assert_nothing_stored(app)


def test_a_json_field_of_the_wrong_type_is_a_422(app, client, dev, subtests):
    for field in ("manifest", "manifest_yaml", "visibility", "sha256", "publisher"):
        with subtests.test(field=field):
            body = {"manifest": pkg.manifest(), field: ["not", "text"]}
            pointer = "/" + field
            if field == "manifest":
                body, pointer = {"manifest": ["not", "an", "object"]}, ""
            problem = problem_of(client.post(URL, json=body, headers=dev), 422)
            assert error_pointers(problem) == [pointer]
            assert_nothing_stored(app)


# --- Two identical uploads at the same moment -----------------------------------------------


@pytest.fixture
def sqlite_app(tmp_path):
    """Always the embedded SQLite mode, whatever backend the rest of the run uses."""
    with helpers.embedded_sqlite_app(tmp_path, lambda _people: None) as (app, _people):
        yield app


@pytest.mark.truncate
@pytest.mark.parametrize("backend", ["main database", "embedded sqlite"])
def test_two_identical_uploads_at_the_same_moment_give_one_201_and_one_409(
    request, people, backend
):
    target = request.getfixturevalue("app" if backend == "main database" else "sqlite_app")
    data = pkg.zip_package(pkg.manifest_yaml())
    headers = bearer(target, "dev@acme.test")
    barrier = threading.Barrier(2)
    results: list[object] = []

    def racer() -> None:
        client = target.test_client()
        body = {"package": (io.BytesIO(data), "purchasing.zip")}
        barrier.wait()
        try:
            resp = client.post(URL, data=body, headers=headers, content_type="multipart/form-data")
            results.append((resp.status_code, resp.mimetype))
        except Exception as exc:  # a 500 propagates in TESTING; report it, don't hang
            results.append(repr(exc))

    threads = [threading.Thread(target=racer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results, key=str) == [
        (201, "application/json"),
        (409, "application/problem+json"),
    ]
    state = registry_state(target)
    assert (state["releases"], state["events"], state["status_changes"]) == (1, 1, 1)
    assert state["files"] == [store_path(sha(data))]


# --- validate-manifest --------------------------------------------------------------------------


def test_validate_manifest_answers_valid_with_the_normalized_manifest(app, client, dev, subtests):
    for form in MANIFEST_FORMS:
        with subtests.test(form=form):
            resp = client.post(VALIDATE, headers=dev, **_manifest_as(form))
            assert resp.status_code == 200, resp.get_data(as_text=True)
            body = resp.get_json()
            assert body["valid"] is True and body["errors"] == []
            assert body["manifest"]["dependencies"] == NORMALIZED_DEPENDENCIES
            assert_nothing_stored(app)


def test_validate_manifest_checks_a_package_and_keeps_nothing(app, client, dev):
    data = pkg.tar_package(pkg.manifest_yaml(version="1.0.0+build.1"), folder="purchasing")
    resp = upload(client, dev, data, url=VALIDATE, filename="p.tgz")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["manifest"]["version"] == "1.0.0+build.1"
    assert_nothing_stored(app)


def test_validate_manifest_reports_a_hostile_package_as_invalid(app, client, dev):
    link = pkg.tar_member("main.py", type=tarfile.SYMTYPE, linkname="src/main.py")
    data = _tgz_with(pkg.tar_member(*MAIN), link)
    body = upload(client, dev, data, url=VALIDATE).get_json()
    assert body["valid"] is False
    assert error_pointers(body) == ["/package"]
    assert "'main.py': symbolic link" in body["errors"][0]["message"]
    assert_nothing_stored(app)


def test_validate_manifest_does_not_claim_a_name_or_version(app, client, dev, globex):
    """Validation stores nothing, so the same manifest can still be published afterwards."""
    manifest = {"manifest": pkg.manifest()}
    assert client.post(VALIDATE, json=manifest, headers=globex).get_json()["valid"] is True
    assert client.post(URL, json=manifest, headers=dev).status_code == 201


def test_validate_manifest_answers_unreadable_yaml_with_a_400(app, client, dev):
    resp = upload(client, dev, url=VALIDATE, manifest=UNREADABLE_YAML["syntax error"])
    assert_has_line_and_column(problem_of(resp, 400))
    assert_nothing_stored(app)


def test_validate_manifest_needs_a_token(client, people):
    problem_of(client.post(VALIDATE, json={"manifest": pkg.manifest()}), 401)
