"""`flask modules ...`: validate a manifest or package locally, start a new module.

Both commands work offline: nothing here opens the database or calls a service. `validate`
goes through `read_submission`, so it applies exactly the rules of an upload to the API.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from string import Template

import click
from flask import current_app
from flask.cli import AppGroup

from portal.lib.json_errors import join_pointer, problem
from portal.services.errors import BadRequest, DomainError, TooLarge, ValidationFailed
from portal.services.publishing import manifest as manifests
from portal.services.publishing.inspection import MANIFEST_NAME, detect_kind
from portal.services.publishing.submissions import PackageFile, Submission, read_submission

modules_cli = AppGroup("modules", help="Validate and scaffold modules.")

STARTER_DIR = Path(__file__).parent / "starter"
STARTER_VERSION = "0.1.0"
# Template (under STARTER_DIR) -> file written, "$package" standing for the Python package.
STARTER_FILES = (
    ("module.yaml.tmpl", "module.yaml"),
    ("package/__init__.py.tmpl", "$package/__init__.py"),
    ("package/main.py.tmpl", "$package/main.py"),
    ("package/health.py.tmpl", "$package/health.py"),
    ("README.md.tmpl", "README.md"),
)
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_HEAD_BYTES = 64 * 1024
_CHUNK = 1 << 20
_MIB = 1024 * 1024


# --- validate ------------------------------------------------------------------------------


@modules_cli.command("validate")
@click.argument(
    "path",
    type=click.Path(exists=True, readable=True, path_type=Path),
)
def validate_command(path: Path) -> None:
    """Validate a manifest (YAML or JSON), a package (.zip, .tar.gz) or a module folder.

    Exits 0 when valid, 1 listing every error as POINTER: message. Needs no database.
    """
    try:
        checked = _validate_path(path)
    except DomainError as exc:
        _report_invalid(exc, _hint(path, exc))
        raise SystemExit(1) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read {_show(path)}: {exc.strerror or exc}") from None
    click.echo(f"valid: {_safe(checked.name)} {_safe(checked.version)}")
    if checked.inspected is not None:
        report = checked.inspected.report
        click.echo(
            f"package: {report.kind}, {len(report.files)} files, {_size(report.total_size)} "
            f"unpacked, manifest {_safe(report.manifest_path)}, sha256 {checked.package.sha256}"
        )
        for warning in report.warnings:
            click.echo(f"warning: {_safe(warning)}")


def _validate_path(path: Path):
    """The checked submission for a folder, a package or a manifest file; raises DomainError."""
    if path.is_dir():
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.is_file():
            message = f"no {MANIFEST_NAME} in the folder {_show(path)}"
            raise ValidationFailed(f"{message}.", errors=[problem("", message)])
        return read_submission(Submission(manifest_yaml=_read_manifest_bytes(manifest_path)))
    if not path.is_file():
        raise click.BadParameter(
            f"{_show(path)} is neither a file nor a folder.", param_hint="'PATH'"
        )
    with path.open("rb") as fh:
        head = fh.read(_HEAD_BYTES)
    if detect_kind(head) is not None or not path.name.lower().endswith(MANIFEST_SUFFIXES):
        # A package by its content whatever its name; anything else that is not named like a
        # manifest is refused as a package would be (415, not a zip or tar.gz archive).
        return read_submission(Submission(package=_package_file(path)))
    raw = _read_manifest_bytes(path)
    if path.name.lower().endswith(".json"):
        return read_submission(Submission(manifest_json=_load_json(raw)))
    return read_submission(Submission(manifest_yaml=raw))


def _read_manifest_bytes(path: Path) -> bytes:
    # One byte past the limit is enough for the loaders to answer 413.
    with path.open("rb") as fh:
        return fh.read(manifests.MAX_MANIFEST_BYTES + 1)


def _package_file(path: Path) -> PackageFile:
    """Hash the package as the API does on upload, refusing it over MAX_MODULE_SIZE_MB."""
    max_mb = current_app.config.get("MAX_MODULE_SIZE_MB", 50)
    size = path.stat().st_size
    if size > max_mb * _MIB:
        text = f"the package is larger than {max_mb:g} MB"
        raise TooLarge(text, errors=[problem("/package", text)])
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return PackageFile(path=path, sha256=digest.hexdigest(), size=size, filename=path.name)


def _load_json(raw: bytes) -> object:
    """A manifest written as JSON, read with the YAML loader's limits and error shapes."""
    if len(raw) > manifests.MAX_MANIFEST_BYTES:
        raise TooLarge("The manifest is larger than 256 KiB.")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise _bad_json(f"the byte 0x{raw[exc.start]:02x} is not UTF-8", line, column) from None
    duplicates: dict[int, list[str]] = {}

    def pairs(items: list[tuple[str, object]]) -> dict:
        obj: dict = {}
        for key, value in items:
            if key in obj:
                duplicates.setdefault(id(obj), []).append(key)
            obj[key] = value
        return obj

    def constant(name: str) -> float:
        raise ValueError(f"{name} is not a JSON number")

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise _bad_json(exc.msg, exc.lineno, exc.colno) from None
    except ValueError as exc:  # NaN, Infinity
        raise _bad_json(str(exc), 1, 1) from None
    except RecursionError:
        raise _bad_json("lists and objects are nested too deeply", 1, 1) from None
    if duplicates:
        errors = [
            problem(
                join_pointer(pointer, key),
                f"duplicate key {json.dumps(key)}; a key may appear only once",
            )
            for pointer, obj in _objects(data)
            for key in duplicates.get(id(obj), [])
        ]
        raise ValidationFailed("The manifest is invalid.", errors=errors)
    return data


def _objects(data: object):
    """Every JSON object in `data` with its pointer, without recursion."""
    stack = [("", data)]
    while stack:
        pointer, value = stack.pop()
        if isinstance(value, dict):
            yield pointer, value
            stack.extend((join_pointer(pointer, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((join_pointer(pointer, i), v) for i, v in enumerate(value))


def _bad_json(message: str, line: int, column: int) -> BadRequest:
    message = f"{message} (line {line}, column {column})"
    return BadRequest(
        f"The manifest cannot be read as JSON: {message}.", errors=[problem("", message)]
    )


def _hint(path: Path, exc: DomainError) -> str | None:
    if exc.status == 415 and not path.name.lower().endswith(MANIFEST_SUFFIXES):
        return (
            "a package is a .zip or .tar.gz archive; a manifest file is named *.yaml, *.yml "
            "or *.json; a module folder holds module.yaml"
        )
    return None


def _report_invalid(exc: DomainError, hint: str | None = None) -> None:
    """Every error on its own line as `POINTER: message`, then a summary line."""
    errors = exc.errors or [problem("", exc.message)]
    for error in errors:
        pointer = error.get("pointer") or "(document)"
        click.echo(f"{_safe(pointer)}: {_safe(error.get('message', ''))}")
    if hint:
        click.echo(f"hint: {hint}")
    count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
    title = getattr(exc, "title", "") or type(exc).__name__
    click.echo(f"invalid ({exc.status} {title}, {count}): {_safe(exc.message)}")


def _safe(text: object) -> str:
    """Text from a manifest or an archive, with control characters (terminal escapes, new
    lines) shown escaped so one error stays on one line and cannot drive the terminal."""
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text)
    )


def _show(path: Path) -> str:
    return _safe(click.format_filename(path))


def _size(size: int) -> str:
    if size >= _MIB:
        return f"{size / _MIB:.1f} MiB"
    return f"{size / 1024:.1f} KiB" if size >= 1024 else f"{size} bytes"


# --- new -----------------------------------------------------------------------------------


@modules_cli.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    type=click.Path(exists=True, file_okay=False, writable=True, path_type=Path),
    default=".",
    show_default=True,
    help="The folder to create the module folder in.",
)
def new_command(name: str, parent: Path) -> None:
    """Write a starter module folder NAME/ (manifest, entry point, health endpoint)."""
    values = _starter_values(name)
    rendered = _render_starter(values)
    try:
        _check_starter(name, values, rendered["module.yaml"])
    except DomainError as exc:
        _report_invalid(exc)
        click.echo("nothing was written.")
        raise SystemExit(1) from None
    target = parent / name
    if os.path.lexists(target):
        raise click.ClickException(
            f"{_show(target)} already exists; choose another name or --dir (nothing was written)."
        )
    _write_starter(target, rendered)
    click.echo(f"created {_show(target)}{os.sep}")
    for relative in rendered:
        click.echo(f"  {relative}")
    folder, archive = shlex.quote(_show(target) + os.sep), f"{name}-{STARTER_VERSION}.tar.gz"
    click.echo("next:")
    click.echo(f"  flask --app wsgi modules validate {folder}")
    click.echo(f"  tar czf {archive} --exclude=__pycache__ -C {shlex.quote(_show(parent))} {name}")
    click.echo(f"  then upload {archive} as {_show(target / 'README.md')} explains")


def _starter_values(name: str) -> dict[str, str]:
    return {
        "name": name,
        "package": name.replace("-", "_"),
        "title": " ".join(part.capitalize() for part in name.split("-")),
        "version": STARTER_VERSION,
    }


def _render_starter(values: dict[str, str]) -> dict[str, str]:
    """{relative path: text} of every starter file."""
    rendered = {}
    for template, target in STARTER_FILES:
        text = (STARTER_DIR / template).read_text("utf-8")
        rendered[Template(target).substitute(values)] = Template(text).substitute(values)
    return rendered


def _check_starter(name: str, values: dict[str, str], manifest_text: str) -> None:
    """Refuse a name the manifest rules refuse, before rendering it into YAML (where a name
    such as `a: b` would be a YAML error, not a name error), then check the starter's own
    manifest with the very validator `modules validate` uses. Raises DomainError."""
    package = values["package"]
    # Just enough manifest to test the name and the Python package derived from it.
    probe = {
        "name": name,
        "version": STARTER_VERSION,
        "description": "starter",
        "author": "starter",
        "entry_points": {"main": f"{package}.main:main"},
    }
    refused = f"{name!r} cannot name a new module."
    _normalized, errors = manifests.validate_manifest(probe)
    named = [error for error in errors if error["pointer"] == "/name"]
    if named:
        raise ValidationFailed(refused, errors=named)
    if errors:  # the name is fine, but the Python package made of it is not
        message = f"its Python package {package!r} cannot be used: {errors[0]['message']}"
        raise ValidationFailed(refused, errors=[problem("/name", message)])
    if package in sys.stdlib_module_names:
        message = (
            f"its Python package {package!r} would hide the standard library module of that "
            "name; choose another module name"
        )
        raise ValidationFailed(refused, errors=[problem("/name", message)])
    manifests.check_manifest(manifests.load_manifest_yaml(manifest_text))


def _write_starter(target: Path, rendered: dict[str, str]) -> None:
    try:
        target.mkdir()  # claims the name: fails if it appeared meanwhile
    except FileExistsError:
        raise click.ClickException(f"{_show(target)} already exists.") from None
    except OSError as exc:
        raise click.ClickException(f"cannot create {_show(target)}: {exc.strerror}") from None
    try:
        for relative, text in rendered.items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
    except OSError as exc:
        shutil.rmtree(target, ignore_errors=True)  # only what this command created
        raise click.ClickException(f"cannot write {_show(target)}: {exc.strerror}") from None
