"""`flask modules validate` and `flask modules new`, run with an app whose database cannot be
reached (a closed port), so any database access would fail the command."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from portal import create_app
from portal.config import TestConfig
from tests import packaging

ROOT = Path(__file__).resolve().parents[1]
CLOSED_DATABASE = "postgresql://postgres@127.0.0.1:1/x"


def _offline_app(base: Path, **overrides):
    return create_app(
        TestConfig(
            CLOSED_DATABASE,
            MODULE_STORAGE_PATH=str(base / "packages"),
            INSTANCE_PATH=str(base / "instance"),
            **overrides,
        )
    )


@pytest.fixture(scope="module")
def offline_app(tmp_path_factory):
    return _offline_app(tmp_path_factory.mktemp("offline"))


def _run(app, *args):
    result = app.test_cli_runner().invoke(args=["modules", *map(str, args)])
    # A crash (a database touched, a traceback) is never an acceptable answer.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _lines(result) -> list[str]:
    return result.output.splitlines()


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def _tar_gz(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tf:
        tf.add(folder, arcname=folder.name, filter=_skip_pycache)
    return target


def _skip_pycache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name.split("/") else info


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(folder.parent).as_posix())
    return target


# --- validate ------------------------------------------------------------------------------


def test_a_valid_manifest_file_is_reported_valid_with_its_name_and_version(offline_app, tmp_path):
    path = _write(tmp_path / "module.yaml", packaging.manifest_yaml("purchasing", "1.2.0"))
    result = _run(offline_app, "validate", path)
    assert result.exit_code == 0, result.output
    assert _lines(result) == ["valid: purchasing 1.2.0"]


def test_an_invalid_manifest_lists_every_error_by_pointer_and_exits_1(offline_app, tmp_path):
    text = "name: purchasing\nversion: '1.0'\ndescription: Buying\nsurprise: 1\n"
    result = _run(offline_app, "validate", _write(tmp_path / "module.yaml", text))
    assert result.exit_code == 1
    lines = _lines(result)
    pointers = {line.split(": ", 1)[0] for line in lines[:-1]}
    assert pointers == {"/version", "/author", "/surprise"}
    assert "1.0.0" in next(line for line in lines if line.startswith("/version: "))
    assert lines[-1] == "invalid (422 Validation failed, 3 errors): The manifest is invalid."


def test_a_yaml_syntax_error_is_reported_with_its_line_and_column(offline_app, tmp_path):
    text = "name: purchasing\nversion: 1.0.0\ndependencies: [a, b\nauthor: x\n"
    result = _run(offline_app, "validate", _write(tmp_path / "module.yaml", text))
    assert result.exit_code == 1
    first, summary = _lines(result)
    assert first.startswith("(document): ") and "(line 4, column " in first
    assert summary.startswith("invalid (400 Bad request, 1 error): The manifest cannot be read")


def test_yaml_that_is_not_a_mapping_or_uses_aliases_is_refused_without_a_traceback(
    offline_app, tmp_path
):
    for text in ("- just\n- a list\n", "a: &x [1]\nb: *x\n", "name: !!python/name:os.system x\n"):
        result = _run(offline_app, "validate", _write(tmp_path / "m.yaml", text))
        assert result.exit_code == 1, text
        assert _lines(result)[0].startswith("(document): ") and "(line " in result.output


def test_a_manifest_written_as_json_is_validated_and_its_duplicate_keys_refused(
    offline_app, tmp_path
):
    ok = (
        '{\n\t"name": "purchasing",\n\t"version": "1.0.0",\n\t"description": "d",\n\t"author": "a"}'
    )
    result = _run(offline_app, "validate", _write(tmp_path / "module.json", ok))
    assert result.exit_code == 0 and _lines(result) == ["valid: purchasing 1.0.0"]

    duplicate = ok.replace('"author": "a"', '"author": "a", "version": "2.0.0"')
    result = _run(offline_app, "validate", _write(tmp_path / "module.json", duplicate))
    assert result.exit_code == 1
    assert _lines(result)[0] == '/version: duplicate key "version"; a key may appear only once'

    broken = _write(tmp_path / "module.json", '{"name": "purchasing",\n "version": }')
    result = _run(offline_app, "validate", broken)
    assert result.exit_code == 1
    assert _lines(result)[0] == "(document): Expecting value (line 2, column 13)"

    deep = _write(tmp_path / "deep.json", "[" * 200_000)
    result = _run(offline_app, "validate", deep)
    assert result.exit_code == 1 and "nested too deeply" in result.output


def test_a_hostile_package_is_refused_naming_the_entry(offline_app, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("module.yaml", packaging.manifest_yaml())
        zf.writestr("../evil", "owned")
    result = _run(offline_app, "validate", _write(tmp_path / "evil.zip", buf.getvalue()))
    assert result.exit_code == 1
    assert _lines(result)[0] == "/package: entry '../evil': '..' segment in path"
    assert _lines(result)[-1].startswith("invalid (422 Validation failed, 1 error)")


def test_a_text_file_is_refused_as_an_unsupported_type(offline_app, tmp_path):
    result = _run(offline_app, "validate", _write(tmp_path / "notes.txt", "just some notes\n"))
    assert result.exit_code == 1
    lines = _lines(result)
    assert lines[0] == "/package: not a zip or tar.gz archive"
    assert lines[1].startswith("hint: ") and "*.yaml" in lines[1]
    assert lines[-1].startswith("invalid (415 Unsupported media type, 1 error)")


def test_a_package_is_recognised_by_its_content_and_its_warnings_are_printed(offline_app, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data, mode in (
            ("purchasing/module.yaml", packaging.manifest_yaml().encode(), 0o644),
            ("purchasing/bin/run.sh", b"#!/bin/sh\n", 0o755),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tf.addfile(info, io.BytesIO(data))
    # Named like a manifest, but its bytes are a tar.gz: the content decides.
    result = _run(offline_app, "validate", _write(tmp_path / "module.yaml", buf.getvalue()))
    assert result.exit_code == 0, result.output
    lines = _lines(result)
    assert lines[0] == "valid: purchasing 1.0.0"
    assert (
        lines[1].startswith("package: tar.gz, 2 files, ") and "purchasing/module.yaml" in lines[1]
    )
    assert lines[2] == "warning: purchasing/bin/run.sh: executable"


def test_a_folder_is_validated_by_its_module_yaml_and_one_without_it_is_invalid(
    offline_app, tmp_path
):
    _write(tmp_path / "purchasing" / "module.yaml", packaging.manifest_yaml(version="2.0.0"))
    result = _run(offline_app, "validate", tmp_path / "purchasing")
    assert result.exit_code == 0 and _lines(result) == ["valid: purchasing 2.0.0"]

    (tmp_path / "empty").mkdir()
    result = _run(offline_app, "validate", tmp_path / "empty")
    assert result.exit_code == 1
    assert _lines(result)[0].startswith("(document): no module.yaml in the folder ")


def test_a_missing_path_is_a_usage_error_with_exit_status_2(offline_app, tmp_path):
    result = _run(offline_app, "validate", tmp_path / "nowhere.yaml")
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_oversized_manifests_and_packages_are_refused_as_too_large(tmp_path):
    app = _offline_app(tmp_path, MAX_MODULE_SIZE_MB=1)
    big = packaging.manifest_yaml() + "x-padding: '" + "a" * 300_000 + "'\n"
    result = _run(app, "validate", _write(tmp_path / "module.yaml", big))
    assert result.exit_code == 1 and "(413 Content too large, 1 error)" in result.output

    package = packaging.zip_package(
        packaging.manifest_yaml(), files={"blob.bin": os.urandom(2 << 20)}
    )
    result = _run(app, "validate", _write(tmp_path / "big.zip", package))
    assert result.exit_code == 1
    assert _lines(result)[0] == "/package: the package is larger than 1 MB"


def test_control_characters_from_a_manifest_never_reach_the_terminal(offline_app, tmp_path):
    text = packaging.manifest_yaml() + '"\\e[31mred\\nline": 1\n'
    result = _run(offline_app, "validate", _write(tmp_path / "module.yaml", text))
    assert result.exit_code == 1
    assert "\x1b" not in result.output
    assert _lines(result)[0].startswith("/\\x1b[31mred\\nline: ")


# --- new -----------------------------------------------------------------------------------


def test_new_writes_a_starter_module_that_validates_as_folder_tar_gz_and_zip(offline_app, tmp_path):
    result = _run(offline_app, "new", "stock-alerts", "--dir", tmp_path)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "stock-alerts"
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert written == [
        "README.md",
        "module.yaml",
        "stock_alerts/__init__.py",
        "stock_alerts/health.py",
        "stock_alerts/main.py",
    ]
    manifest = yaml.safe_load((folder / "module.yaml").read_text())
    assert manifest["name"] == "stock-alerts" and manifest["version"] == "0.1.0"
    assert manifest["author"] == "Your Name" and manifest["description"]
    assert manifest["entry_points"] == {"main": "stock_alerts.main:main"}
    assert manifest["endpoints"] == [
        {"path": "/hello", "method": "GET", "handler": "stock_alerts.main:hello"}
    ]
    properties = manifest["config_schema"]["properties"]
    assert properties["api_key"]["format"] == "password" and "greeting" in properties
    assert manifest["health_check"] == {
        "path": "/health",
        "interval_seconds": 60,
        "timeout_seconds": 3,
    }
    readme = (folder / "README.md").read_text()
    for step in (
        "modules validate stock-alerts/",
        "tar czf stock-alerts-0.1.0.tar.gz",
        "zip -r stock-alerts-0.1.0.zip",
        'curl -H "Authorization: Bearer $TOKEN"',
        "/api/v1/modules/",
    ):
        assert step in readme
    for source in folder.rglob("*.py"):
        compile(source.read_text(), str(source), "exec")

    for path in (
        folder,
        _tar_gz(folder, tmp_path / "stock-alerts-0.1.0.tar.gz"),
        _zip(folder, tmp_path / "stock-alerts-0.1.0.zip"),
    ):
        result = _run(offline_app, "validate", path)
        assert result.exit_code == 0, result.output
        assert _lines(result)[0] == "valid: stock-alerts 0.1.0"
        assert "warning" not in result.output


def test_the_starter_health_endpoint_answers_200_healthy(offline_app, tmp_path):
    assert _run(offline_app, "new", "stock-alerts", "--dir", tmp_path).exit_code == 0
    script = """
import json
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator
from stock_alerts import health, main

def call(app, path, method="GET"):
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method, "SCRIPT_NAME": "", "QUERY_STRING": ""}
    setup_testing_defaults(environ)
    seen = {}
    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)
        return lambda data: None
    result = validator(app)(environ, start_response)
    body = b"".join(result)
    result.close()
    return seen["status"], seen["headers"]["Content-Type"], json.loads(body)

print(json.dumps([
    call(health.app, "/health"),
    call(health.app, "/health", "POST")[0],
    call(health.app, "/elsewhere")[0],
    call(main.application, "/hello"),
    call(main.application, "/health")[0],
]))
"""
    run = subprocess.run(
        [sys.executable, "-B", "-W", "error", "-c", script],
        cwd=tmp_path / "stock-alerts",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    health, post, missing, hello, through_main = json.loads(run.stdout)
    assert health == ["200 OK", "application/json", {"status": "healthy"}]
    assert (post, missing, through_main) == ("405 Method Not Allowed", "404 Not Found", "200 OK")
    assert hello == ["200 OK", "application/json", {"message": "Hello from stock-alerts"}]


def test_new_quotes_names_that_yaml_would_read_as_booleans(offline_app, tmp_path):
    for name in ("yes", "no", "on", "null"):
        assert _run(offline_app, "new", name, "--dir", tmp_path).exit_code == 0
        result = _run(offline_app, "validate", tmp_path / name)
        assert _lines(result) == [f"valid: {name} 0.1.0"], result.output


def test_new_refuses_a_name_the_manifest_rules_refuse_and_writes_nothing(offline_app, tmp_path):
    refusals = {
        "Stock_Alerts": '/name: "Stock_Alerts" is not a valid module name',
        "a: b": '/name: "a: b" is not a valid module name',
        "../escape": '/name: "../escape" is not a valid module name',
        "x": "it is 1 characters long",
        "if": "/name: its Python package 'if' cannot be used",
        "json": "would hide the standard library module",
    }
    for name, expected in refusals.items():
        result = _run(offline_app, "new", name, "--dir", tmp_path)
        assert result.exit_code == 1, name
        assert expected in result.output, result.output
        assert f"invalid (422 Validation failed, 1 error): {name!r} cannot name" in result.output
    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path.parent / "escape").exists()


def test_new_refuses_to_overwrite_an_existing_folder(offline_app, tmp_path):
    _write(tmp_path / "stock-alerts" / "module.yaml", "mine")
    result = _run(offline_app, "new", "stock-alerts", "--dir", tmp_path)
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert (tmp_path / "stock-alerts" / "module.yaml").read_text() == "mine"
    assert [p.name for p in (tmp_path / "stock-alerts").iterdir()] == ["module.yaml"]

    (tmp_path / "stock-alerts" / "module.yaml").unlink()  # an empty folder is kept too
    assert _run(offline_app, "new", "stock-alerts", "--dir", tmp_path).exit_code == 1
    assert list((tmp_path / "stock-alerts").iterdir()) == []


def test_new_into_a_missing_parent_folder_is_a_usage_error(offline_app, tmp_path):
    result = _run(offline_app, "new", "stock-alerts", "--dir", tmp_path / "absent")
    assert result.exit_code == 2 and "does not exist" in result.output


# --- the real entry point --------------------------------------------------------------------


def test_the_real_flask_entry_point_validates_without_a_database(offline_app, tmp_path):
    assert _run(offline_app, "new", "stock-alerts", "--dir", tmp_path).exit_code == 0
    package = _tar_gz(tmp_path / "stock-alerts", tmp_path / "stock-alerts-0.1.0.tar.gz")
    flask = Path(sys.executable).with_name("flask")

    def run(path: Path, database_url: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "REDIS"))}
        env.update(
            DATABASE_URL=database_url,
            ENVIRONMENT="development",
            INSTANCE_PATH=str(tmp_path / "instance"),
            MODULE_STORAGE_PATH=str(tmp_path / "packages"),
        )
        command = [str(flask), "--app", "wsgi", "modules", "validate", str(path)]
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )

    valid = run(package, CLOSED_DATABASE)
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.splitlines()[0] == "valid: stock-alerts 0.1.0"

    sqlite_file = tmp_path / "db" / "registry.db"
    bad = _write(tmp_path / "bad.yaml", "name: stock-alerts\nversion: 1.0\n")
    invalid = run(bad, f"sqlite:///{sqlite_file}")
    assert invalid.returncode == 1, invalid.stderr
    assert "/version: " in invalid.stdout and "Traceback" not in invalid.stderr
    assert not sqlite_file.exists()  # never opened
