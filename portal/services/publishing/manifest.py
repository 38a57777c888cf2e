"""The module manifest (`module.yaml`, spec/manifest.md): reading it and validating it.

The one validator behind the API, the pages and the CLI. The shape is checked against
`schemas/manifest.json` (also served to editors); what a schema cannot say (SemVer, constraints,
uniqueness, the config_schema rules in `portal.config_schema`) is checked here in Python.
"""

from __future__ import annotations

import copy
import json
import keyword
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import referencing
import yaml
from jsonschema import Draft202012Validator
from yaml.nodes import ScalarNode

from portal.lib.config_schema import MAX_SCHEMA_DEPTH, check_config_schema
from portal.lib.json_errors import (
    Error,
    describe_errors,
    join_pointer,
    json_size,
    problem,
    quote_value,
    scan_json,
    unique_errors,
)
from portal.lib.versions import Constraint, Version
from portal.services.errors import BadRequest, TooLarge, ValidationFailed

MAX_MANIFEST_BYTES = 256 * 1024
SCHEMA_PATH = Path(__file__).parent / "manifest.schema.json"

# --- Reading YAML --------------------------------------------------------------------------

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null")}
_IMPLICIT_TAGS = {_CORE + t for t in ("int", "float", "bool", "null")}
# PyYAML's scanner slows down quadratically with flow nesting (`[[[[...`: seconds at a few
# thousand levels), a cheap denial of service; a valid manifest nests about 33 levels at most.
_MAX_FLOW_DEPTH = 100


class _ManifestLoader(yaml.SafeLoader):
    """A SafeLoader that resolves only the plain core types.

    Timestamps stay text, `<<` is an ordinary key and `=` an ordinary value: a manifest means
    none of those special readings.
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag in _IMPLICIT_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def fetch_flow_collection_start(self, TokenClass):  # noqa: N803 - PyYAML's name
        if self.flow_level >= _MAX_FLOW_DEPTH:
            message = f"lists and mappings are nested more than {_MAX_FLOW_DEPTH} levels deep"
            raise _Unreadable(message, self.get_mark())
        super().fetch_flow_collection_start(TokenClass)


class _Unreadable(Exception):
    def __init__(self, message: str, mark: Any):
        super().__init__(message)
        self.message = message
        self.line, self.column = (mark.line + 1, mark.column + 1) if mark else (1, 1)


@dataclass
class _Frame:
    container: dict | list
    pointer: str
    key: str | None = None  # in a mapping: the key just read, waiting for its value


def load_manifest_yaml(raw: bytes | str) -> dict:
    """Read a manifest from UTF-8 YAML safely: core types only, no other tags, no anchors or
    aliases (refused at the first one, so an alias bomb is never expanded).

    Raises TooLarge (over 256 KiB), BadRequest (not readable into a mapping; the message gives
    the line and column) and ValidationFailed (a duplicate key, or a key that is not text).
    """
    text = _decode(raw)
    loader = None
    try:
        loader = _ManifestLoader(text)  # its reader refuses control characters right away
        root, root_mark, key_errors = _compose(loader)
    except _Unreadable as exc:
        raise _bad_yaml(exc.message, exc.line, exc.column) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise _bad_yaml(exc.problem or exc.context or "malformed YAML", *_where(mark)) from None
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        message = f"the character U+{exc.character:04X} is not allowed"
        raise _bad_yaml(message, line, column) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root_mark is None:
        raise _bad_yaml("the manifest is empty; expected fields such as name: and version:", 1, 1)
    if not isinstance(root, dict):
        message = "the top level must be a mapping of fields (name: ..., version: ...)"
        raise _bad_yaml(message, *_where(root_mark))
    if key_errors:
        raise ValidationFailed("The manifest is invalid.", errors=unique_errors(key_errors))
    return root


def _decode(raw: bytes | str) -> str:
    if isinstance(raw, str):
        # Every character is at least one byte: encoding is only needed near the limit.
        short = len(raw) <= MAX_MANIFEST_BYTES
        size = len(raw.encode("utf-8", "surrogatepass")) if short else len(raw)
    else:
        raw, size = bytes(raw), len(raw)
    if size > MAX_MANIFEST_BYTES:
        raise TooLarge("The manifest is larger than 256 KiB.")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            column = exc.start - raw.rfind(b"\n", 0, exc.start)
            raise _bad_yaml(f"the byte 0x{raw[exc.start]:02x} is not UTF-8", line, column) from None
    return raw.removeprefix("\ufeff")


def _where(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark else (1, 1)


def _line_column(text: str, position: int) -> tuple[int, int]:
    return text.count("\n", 0, position) + 1, position - text.rfind("\n", 0, position)


def _bad_yaml(message: str, line: int, column: int) -> BadRequest:
    message = f"{message} (line {line}, column {column})"
    detail = f"The manifest cannot be read as YAML: {message}."
    return BadRequest(detail, errors=[problem("", message)])


def _compose(loader: _ManifestLoader) -> tuple[Any, Any, list[Error]]:
    """Build the document straight from parser events, without recursion (PyYAML's composer
    recurses once per level). Returns (document, mark of its root, problems with keys)."""
    key_errors: list[Error] = []
    loader.get_event()  # stream start
    if loader.check_event(yaml.StreamEndEvent):
        return None, None, key_errors
    loader.get_event()  # document start
    root = root_mark = None
    stack: list[_Frame] = []
    while True:
        event = loader.get_event()
        if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            stack.pop()
        else:
            value = _node_value(loader, event)
            if stack:
                pointer = _place(stack[-1], value, event, key_errors)
            else:
                root, root_mark, pointer = value, event.start_mark, ""
            if isinstance(value, dict | list):
                if len(stack) >= _MAX_FLOW_DEPTH:
                    # Block nesting (`- - - - ...`) too: each level keeps its pointer, so
                    # unbounded depth costs memory and time quadratic in the size. Well-formed
                    # YAML, so a 422 at the top-level field that holds it.
                    field = "/" + pointer.split("/")[1] if pointer.count("/") else pointer
                    line = event.start_mark.line + 1
                    message = f"nested more than {_MAX_FLOW_DEPTH} levels deep (line {line})"
                    raise ValidationFailed(
                        "The manifest is invalid.", errors=[problem(field, message)]
                    )
                stack.append(_Frame(value, pointer))
        if not stack:
            break
    loader.get_event()  # document end
    if not loader.check_event(yaml.StreamEndEvent):
        raise _Unreadable("the manifest must be one YAML document", loader.peek_event().start_mark)
    return root, root_mark, key_errors


def _node_value(loader: _ManifestLoader, event: Any) -> Any:
    """The value an event starts, refusing anchors, aliases and any tag but the core types'."""
    if isinstance(event, yaml.AliasEvent) or event.anchor is not None:
        message = "anchors (&name) and aliases (*name) are not allowed in a manifest"
        raise _Unreadable(message, event.start_mark)
    tag = event.tag
    if isinstance(event, yaml.ScalarEvent):
        if tag in (None, "!"):
            tag = loader.resolve(ScalarNode, event.value, event.implicit)
        if tag in _SCALAR_TAGS:
            node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
            try:
                return loader.yaml_constructors[tag](loader, node)
            except (ValueError, KeyError, yaml.YAMLError):
                message = f"{quote_value(event.value)} cannot be read as {_tag_name(tag)}"
                raise _Unreadable(message, event.start_mark) from None
    else:
        empty: dict | list = [] if isinstance(event, yaml.SequenceStartEvent) else {}
        if tag in (None, "!", _CORE + ("seq" if isinstance(empty, list) else "map")):
            return empty
    message = f"the tag {_tag_name(tag)} is not allowed: a manifest holds only plain values"
    raise _Unreadable(message, event.start_mark)


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


def _place(frame: _Frame, value: Any, event: Any, key_errors: list[Error]) -> str:
    """Put a value into its parent and return its pointer; in a mapping, keys and values take
    turns. Keys that repeat or are not text are noted in `key_errors`."""
    container = frame.container
    if isinstance(container, list):
        container.append(value)
        return join_pointer(frame.pointer, len(container) - 1)
    if frame.key is not None:
        container[frame.key] = value
        pointer, frame.key = join_pointer(frame.pointer, frame.key), None
        return pointer
    if isinstance(value, dict | list):
        raise _Unreadable("a key must be plain text, not a list or a mapping", event.start_mark)
    key = value if isinstance(value, str) else event.value
    pointer, line = join_pointer(frame.pointer, key), event.start_mark.line + 1
    if not isinstance(value, str):
        kind = "null" if value is None else "a boolean" if isinstance(value, bool) else "a number"
        hint = f'put it in quotes: "{key}" (line {line})'
        key_errors.append(problem(pointer, f"the key {key} was read as {kind}, not text; {hint}"))
    if key in container:
        message = f"duplicate key {quote_value(key)} (line {line}); a key may appear only once"
        key_errors.append(problem(pointer, message))
    frame.key = key
    return pointer


def load_manifest_json(obj: Any) -> dict:
    """Accept a manifest sent as a JSON object. Raises TooLarge over 256 KiB (as JSON) and
    ValidationFailed when it is not an object."""
    if json_size(obj, MAX_MANIFEST_BYTES) > MAX_MANIFEST_BYTES:
        raise TooLarge("The manifest is larger than 256 KiB.")
    if not isinstance(obj, dict):
        message = "the manifest must be an object of fields (name, version, description, ...)"
        raise ValidationFailed("The manifest is invalid.", errors=[problem("", message)])
    return obj


# --- Validating ----------------------------------------------------------------------------

_NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_NAME_RULE = "lowercase letters, digits and single hyphens, starting with a letter, 2-64 chars"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED_RE = re.compile(rf"{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*")


@cache
def manifest_schema() -> dict:
    """The manifest's JSON Schema, as served at /api/v1/schemas/manifest.json (do not mutate)."""
    return json.loads(SCHEMA_PATH.read_text("utf-8"))


@cache
def _schema_validator() -> Draft202012Validator:
    return Draft202012Validator(manifest_schema(), registry=referencing.Registry())


def validate_manifest(data: dict) -> tuple[dict, list[Error]]:
    """Validate a parsed manifest; returns (normalized, errors), all errors at once.

    Each error is {"pointer": JSON Pointer into the manifest, "message": what is wrong and what
    is expected}, one per pointer. `normalized` (meaningful only without errors) has the version
    in canonical form and every dependency with its defaults (version "*", type "module",
    optional false). Never raises, whatever the input.
    """
    if not isinstance(data, dict):
        return {}, [problem("", "the manifest must be a mapping of fields (name, version, ...)")]
    errors: list[Error] = []
    usable = {}
    for key, value in data.items():
        # Too deep or not JSON: kept away from the other checks, which would recurse or choke.
        found = scan_json(value, join_pointer("", key), max_depth=MAX_SCHEMA_DEPTH)
        if not isinstance(key, str):
            found.append(problem(join_pointer("", key), "field names must be text"))
        errors += found
        if not found:
            usable[key] = value
    version = _check_rules(usable, errors)
    # The rules' errors come first, so their messages win over the schema's for a pointer.
    errors = unique_errors(errors + describe_errors(_schema_validator().iter_errors(usable)))
    if errors:
        return dict(data), errors
    return _normalize(data, version), []


def check_manifest(data: dict) -> dict:
    """The normalized manifest; raises ValidationFailed listing every error if it is invalid."""
    normalized, errors = validate_manifest(data)
    if errors:
        raise ValidationFailed("The manifest is invalid.", errors=errors)
    return normalized


def _check_rules(m: dict, errors: list[Error]) -> Version | None:
    """The rules the JSON Schema cannot express; only values of the right type are looked at."""
    version = None
    if isinstance(m.get("name"), str):
        _add(errors, "/name", _name_problem(m["name"]))
    if isinstance(m.get("version"), str):
        try:
            version = Version.parse(m["version"])
        except ValueError as exc:
            _add(errors, "/version", str(exc))
    if isinstance(m.get("homepage"), str):
        _add(errors, "/homepage", _homepage_problem(m["homepage"]))
    _check_dependencies(m.get("dependencies"), m.get("name"), errors)
    if isinstance(m.get("entry_points"), dict):
        for name, target in m["entry_points"].items():
            _add(errors, join_pointer("/entry_points", name), _dotted_problem(target))
    _check_endpoints(m.get("endpoints"), errors)
    if "config_schema" in m:
        errors += check_config_schema(m["config_schema"], "/config_schema")
    health = m.get("health_check")
    if isinstance(health, dict):
        interval, timeout = health.get("interval_seconds"), health.get("timeout_seconds")
        # Compared only when both are in range, so this never hides a range error.
        if interval in range(10, 3601) and timeout in range(1, 31) and timeout > interval:
            message = f"must not be longer than interval_seconds ({interval})"
            errors.append(problem("/health_check/timeout_seconds", message))
    return version


def _add(errors: list[Error], pointer: str, message: str | None) -> None:
    if message:
        errors.append(problem(pointer, message))


def _name_problem(name: str) -> str | None:
    if 2 <= len(name) <= 64 and _NAME_RE.fullmatch(name):
        return None
    if not 2 <= len(name) <= 64:
        why = f"it is {len(name)} characters long"
    elif _NAME_RE.fullmatch(name.lower()):
        why = f"use lowercase ({name.lower()})"
    elif not "a" <= name[0] <= "z":
        why = "it must start with a lowercase letter"
    elif "--" in name or name.endswith("-"):
        why = "it has two hyphens in a row" if "--" in name else "it ends with a hyphen"
    else:
        why = "it has characters other than lowercase letters, digits and hyphens"
    return f"{quote_value(name)} is not a valid module name: {why}; expected {_NAME_RULE}"


def _homepage_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        ok = bool(re.match(r"https?://", url) and parts.hostname and not re.search(r"\s", url))
        _ = ok and parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        ok = False
    if ok:
        return None
    return f"{quote_value(url)} is not an http(s) URL with a host, e.g. https://example.com/a"


def _dotted_problem(target: Any) -> str | None:
    if not isinstance(target, str):
        return None  # the schema reports the type
    if not _DOTTED_RE.fullmatch(target):
        expected = "package.module:callable, e.g. my_module.handlers:get_data"
        return f"{quote_value(target)} is not a dotted Python path; expected {expected}"
    reserved = [part for part in re.split(r"[.:]", target) if keyword.iskeyword(part)]
    if reserved:
        return f'{quote_value(target)} cannot be imported: "{reserved[0]}" is a Python keyword'
    return None


def _check_dependencies(deps: Any, own_name: Any, errors: list[Error]) -> None:
    first_at: dict[str, int] = {}
    for index, dep in enumerate(deps if isinstance(deps, list) else []):
        if not isinstance(dep, dict):
            continue
        name, constraint = dep.get("name"), dep.get("version")
        if isinstance(name, str):
            message = _name_problem(name)
            if not message and name == own_name:
                message = "a module cannot depend on itself"
            elif not message and name in first_at:
                message = f"is already listed at /dependencies/{first_at[name]}; list it once"
            first_at.setdefault(name, index)
            _add(errors, f"/dependencies/{index}/name", message)
        if isinstance(constraint, str):
            try:
                Constraint.parse(constraint)
            except ValueError as exc:
                _add(errors, f"/dependencies/{index}/version", str(exc))


def _check_endpoints(endpoints: Any, errors: list[Error]) -> None:
    first_at: dict[tuple[str, str], int] = {}
    for index, endpoint in enumerate(endpoints if isinstance(endpoints, list) else []):
        if not isinstance(endpoint, dict):
            continue
        _add(errors, f"/endpoints/{index}/handler", _dotted_problem(endpoint.get("handler")))
        path, method = endpoint.get("path"), endpoint.get("method")
        if isinstance(path, str) and isinstance(method, str):
            key = (path, method.upper())
            if key in first_at:
                message = f"{key[1]} {path} is already declared at /endpoints/{first_at[key]}"
                errors.append(problem(f"/endpoints/{index}", f"{message}; declare it once"))
            first_at.setdefault(key, index)


def _normalize(data: dict, version: Version | None) -> dict:
    """The valid manifest with defaults filled in (valid, so shallow enough to deep-copy)."""
    normalized = copy.deepcopy(data)
    normalized["version"] = str(version)
    normalized["dependencies"] = [
        {
            "name": dep["name"],
            "version": dep.get("version", "*"),
            "type": dep.get("type", "module"),
            "optional": dep.get("optional", False),
        }
        for dep in normalized.get("dependencies", [])
    ]
    health = normalized.get("health_check", {})
    for field in ("interval_seconds", "timeout_seconds"):
        if isinstance(health.get(field), float):  # JSON Schema's integer accepts 30.0
            health[field] = int(health[field])
    return normalized
