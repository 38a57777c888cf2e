"""Configuration schemas: checking a module's `config_schema` and validating a company's configuration.

Also holds the JSON helpers the manifest validator shares (pointers, size, depth, copying, and
turning jsonschema errors into `{"pointer", "message"}` entries). Everything here walks data with
an explicit stack: input nested thousands of levels deep must give an error, not RecursionError.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any
from urllib.parse import unquote

import referencing
import referencing.exceptions
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing.jsonschema import DRAFT202012

MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32
MAX_CONFIG_DEPTH = 64
MASK = "********"
# A 256 KiB JSON document holds well under this many values; more means shared references.
_MAX_NODES = 500_000
_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

Error = dict[str, str]


# --- JSON helpers -------------------------------------------------------------------------


def join_pointer(base: str, *tokens: object) -> str:
    """`base` extended by tokens, escaped as RFC 6901 says (`~` as `~0`, `/` as `~1`)."""
    return base + "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def unique_errors(entries: Iterable[Error]) -> list[Error]:
    """One entry per pointer (the first wins), in document order."""
    by_pointer: dict[str, str] = {}
    for entry in entries:
        by_pointer.setdefault(entry["pointer"], entry["message"])
    keys = sorted(
        by_pointer,
        key=lambda p: [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in p.split("/")],
    )
    return [{"pointer": p, "message": by_pointer[p]} for p in keys]


def json_size(value: Any, limit: int) -> int:
    """Bytes of `value` as compact UTF-8 JSON; counting stops soon after `limit` is passed."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, dict):
            # braces, one colon per key, commas between entries
            total += 1 + 2 * len(item) + sum(_scalar_size(str(k)) for k in item) + (not item)
            stack.extend(item.values())
        elif isinstance(item, list):
            total += 1 + max(len(item), 1)  # brackets and commas
            stack.extend(item)
        else:
            total += _scalar_size(item)
    return total


def _scalar_size(value: Any) -> int:
    try:
        return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    except ValueError:  # an int too long to print: certainly too large
        return MAX_SCHEMA_BYTES * 1024
    except TypeError:  # not JSON at all; scan_json reports it
        return 0


def scan_json(value: Any, pointer: str = "", *, max_depth: int) -> list[Error]:
    """What makes `value` unfit to handle as JSON: nesting beyond `max_depth` (the value itself is
    level 1), keys that are not text, non-finite or enormous numbers, non-JSON types."""
    errors: list[Error] = []
    stack = [(value, pointer, 1)]
    for _ in range(_MAX_NODES):
        if not stack:
            return errors
        item, ptr, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                message = (
                    f"is nested more than {max_depth} levels deep; at most {max_depth} are allowed"
                )
                return [*errors, {"pointer": pointer, "message": message}]
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, sub in pairs:
                if isinstance(item, dict) and not isinstance(key, str):
                    errors.append(
                        {"pointer": join_pointer(ptr, key), "message": "keys must be text"}
                    )
                else:
                    stack.append((sub, join_pointer(ptr, key), depth + 1))
        elif isinstance(item, bool | str) or item is None:
            continue
        elif isinstance(item, int) and item.bit_length() > 10_000:
            errors.append({"pointer": ptr, "message": "is a number too large to handle"})
        elif isinstance(item, float) and not math.isfinite(item):
            errors.append({"pointer": ptr, "message": "must be a finite number (not .inf or .nan)"})
        elif not isinstance(item, int | float):
            errors.append(
                {"pointer": ptr, "message": f"is not a JSON value ({type(item).__name__})"}
            )
    return [*errors, {"pointer": pointer, "message": "holds too many values"}]


def copy_json(value: Any) -> Any:
    """A deep copy of JSON-like data, made without recursion so any nesting is safe."""
    if not isinstance(value, dict | list):
        return value
    root: Any = {} if isinstance(value, dict) else []
    stack = [(value, root)]
    while stack:
        source, target = stack.pop()
        pairs = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in pairs:
            if isinstance(item, dict | list):
                item_copy: Any = {} if isinstance(item, dict) else []
                stack.append((item, item_copy))
            else:
                item_copy = item
            if isinstance(target, dict):
                target[key] = item_copy
            else:
                target.append(item_copy)
    return root


# --- Human messages for jsonschema errors --------------------------------------------------

_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping of fields",
    "array": "a list",
    "null": "null",
}
_FORMAT_WORDS = {
    "email": "an email address, e.g. name@example.com",
    "idn-email": "an email address, e.g. name@example.com",
    "uri": "an absolute URI, e.g. https://example.com/path",
    "iri": "an absolute URI, e.g. https://example.com/path",
    "date-time": "a date and time in RFC 3339 form, e.g. 2024-01-31T09:30:00Z",
    "date": "a date, e.g. 2024-01-31",
    "time": "a time with an offset, e.g. 09:30:00Z",
    "hostname": "a host name, e.g. example.com",
    "ipv4": "an IPv4 address, e.g. 192.0.2.10",
    "ipv6": "an IPv6 address, e.g. 2001:db8::1",
    "uuid": "a UUID",
}


def quote_value(value: Any, limit: int = 60) -> str:
    """A short, JSON-looking rendering of a value for messages."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= limit else text[: limit - 4] + '..."'


def _kind(value: Any) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "a mapping"


def _quoting_hint(value: bool | int | float, pointer: str) -> str:
    """YAML reads `1.10`, `2024` or `yes` as numbers and booleans; say how to keep them text."""
    token = _unescape(pointer.rsplit("/", 1)[-1])
    prefix = "- " if token.isdigit() or not token else f"{token}: "
    if isinstance(value, bool):
        return (
            f"was read as the boolean {str(value).lower()}, not as text (unquoted yes, no, on, "
            f'off, true and false are booleans in YAML); put it in quotes, e.g. {prefix}"yes"'
        )
    if isinstance(value, float):
        return (
            f"was read as a number ({value!r}), not as text (unquoted, YAML reads 1.10 as the "
            f'number 1.1); put it in quotes exactly as you mean it, e.g. {prefix}"1.10"'
        )
    return f'was read as the number {quote_value(value)}, not as text; put it in quotes: {prefix}"{value}"'


def describe_errors(
    errors: Iterable[ValidationError], base: str = "", *, echo: bool = True
) -> list[Error]:
    """`{"pointer", "message"}` entries for jsonschema errors, pointers being `base` + the path.

    With `echo=False` messages never repeat the submitted value (configurations hold secrets).
    """
    return [entry for error in errors for entry in _describe(error, base, echo)]


def _describe(error: ValidationError, base: str, echo: bool) -> list[Error]:
    pointer = join_pointer(base, *error.absolute_path)
    keyword, expected, instance = error.validator, error.validator_value, error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    if "propertyNames" in error.absolute_schema_path and isinstance(instance, str):
        message = _message(error, keyword, expected, instance, schema, pointer, echo)
        return [
            {
                "pointer": join_pointer(pointer, instance),
                "message": f"is not an allowed key: {message}",
            }
        ]
    if keyword == "required" and isinstance(instance, dict):
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        missing = [name for name in expected if isinstance(name, str) and name not in instance]
        return [
            {"pointer": join_pointer(pointer, n), "message": _required(props.get(n))}
            for n in missing
        ]
    if keyword == "dependentRequired" and isinstance(instance, dict):
        return [
            {
                "pointer": join_pointer(pointer, need),
                "message": f'is required when "{field}" is given',
            }
            for field, needs in expected.items()
            if field in instance
            for need in needs
            if need not in instance
        ]
    if keyword == "additionalProperties" and expected is False and isinstance(instance, dict):
        return [
            {"pointer": join_pointer(pointer, k), "message": _unknown(k, schema)}
            for k in _extra_keys(instance, schema)
        ]
    if keyword == "uniqueItems" and isinstance(instance, list):
        return [_repeated_item(instance, pointer)]
    if keyword in ("anyOf", "oneOf") and error.context:
        return _describe(best_match(error.context), base, echo)
    return [
        {
            "pointer": pointer,
            "message": _message(error, keyword, expected, instance, schema, pointer, echo),
        }
    ]


def _message(error, keyword, expected, instance, schema, pointer, echo) -> str:
    if keyword == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        if echo and types == ["string"] and isinstance(instance, bool | int | float):
            return _quoting_hint(instance, pointer)
        return f"must be {' or '.join(_TYPE_WORDS.get(t, str(t)) for t in types)}, not {_kind(instance)}"
    if keyword in ("enum", "const"):
        return _choice(expected if keyword == "enum" else [expected], instance, echo)
    if keyword == "pattern":
        if expected == r"\S":
            return "must not be blank"
        rule = schema.get("description")
        shown = f"{quote_value(instance)} " if echo else ""
        return (
            f"{shown}does not have the expected form. {rule}"
            if rule
            else f"must match the pattern {expected}"
        )
    if keyword == "format":
        return f"must be {_FORMAT_WORDS.get(expected, f'a valid {expected}')}"
    plain = {
        "minLength": "must not be empty"
        if expected == 1
        else f"must be at least {expected} characters long",
        "maxLength": f"must be at most {expected} characters long",
        "minimum": f"must be at least {expected}",
        "maximum": f"must be at most {expected}",
        "exclusiveMinimum": f"must be greater than {expected}",
        "exclusiveMaximum": f"must be less than {expected}",
        "multipleOf": f"must be a multiple of {expected}",
        "minItems": f"must have at least {expected} item(s)",
        "maxItems": f"must have at most {expected} items",
        "minProperties": f"must have at least {expected} field(s)",
        "maxProperties": f"must have at most {expected} fields",
        "contains": "must contain at least one item of the expected form",
        "not": "is not allowed here",
        "oneOf": "matches more than one of the allowed forms; it must match exactly one",
        "anyOf": "does not match any of the allowed forms",
        None: "is not allowed here",
    }
    if keyword in plain:
        return plain[keyword]
    return error.message[:300] if echo else f"is not valid (it fails the {keyword} rule)"


def _choice(allowed: list, instance: Any, echo: bool) -> str:
    message = "must be one of " + ", ".join(
        quote_value(a) if not isinstance(a, str) else a for a in allowed
    )
    if echo and isinstance(instance, str):
        for variant in (instance.upper(), instance.lower()):
            if variant != instance and variant in allowed:
                return f"{message} (write it as {variant})"
        close = difflib.get_close_matches(instance, [a for a in allowed if isinstance(a, str)], n=1)
        if close:
            return f'{message}; did you mean "{close[0]}"?'
    return message


def _required(prop_schema: Any) -> str:
    rule = prop_schema.get("description") if isinstance(prop_schema, dict) else None
    return f"is required: {rule}" if isinstance(rule, str) and rule else "is required"


def _extra_keys(instance: dict, schema: dict) -> list[str]:
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    patterns = (
        schema.get("patternProperties") if isinstance(schema.get("patternProperties"), dict) else {}
    )
    return [k for k in instance if k not in props and not any(_search(p, k) for p in patterns)]


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except (re.error, RecursionError, OverflowError, TypeError):
        return False


def _unknown(key: str, schema: dict) -> str:
    known = [k for k in schema.get("properties", {}) if isinstance(k, str)]
    message = f"unknown field {quote_value(key)}"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        message += f'; did you mean "{close[0]}"?'
    elif 0 < len(known) <= 15:
        message += "; expected one of " + ", ".join(known)
    if "^x-" in schema.get("patternProperties", {}):
        message += ' (custom fields must start with "x-")'
    return message


def _repeated_item(items: list, pointer: str) -> Error:
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        try:
            key = json.dumps(item, sort_keys=True)
        except (TypeError, ValueError):
            break
        if key in seen:
            first = join_pointer(pointer, seen[key])
            return {
                "pointer": join_pointer(pointer, index),
                "message": f"repeats the item at {first}; items must be unique",
            }
        seen[key] = index
    return {"pointer": pointer, "message": "must not repeat items"}


# --- A module's config_schema --------------------------------------------------------------

_SUBSCHEMA = {
    "additionalProperties",
    "items",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
}
_SUBSCHEMA |= {"unevaluatedItems", "unevaluatedProperties", "contentSchema"}
_SUBSCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
_SUBSCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}


def check_config_schema(schema: Any, pointer: str = "/config_schema") -> list[Error]:
    """Problems with a module's config_schema: a draft 2020-12 schema whose root is `type: object`,
    at most 64 KiB and 32 levels deep, `$ref` only inside itself, every pattern a Python regex."""
    if not isinstance(schema, dict):
        return [
            {
                "pointer": pointer,
                "message": f"must be a JSON Schema mapping with type: object, not {_kind(schema)}",
            }
        ]
    problems = _unusable(schema, pointer)
    if problems:
        return problems
    errors: list[Error] = []
    if schema.get("type") != "object":
        errors.append(
            {
                "pointer": join_pointer(pointer, "type"),
                "message": 'must be "object": a configuration is a mapping of fields',
            }
        )
    if "$schema" in schema and str(schema["$schema"]).rstrip("#") != _DRAFT_2020_12:
        errors.append(
            {
                "pointer": join_pointer(pointer, "$schema"),
                "message": f"must be {_DRAFT_2020_12} (only draft 2020-12 is supported) or left out",
            }
        )
    errors += _reference_errors(schema, pointer, resolve=True)
    errors += _pattern_errors(schema, pointer)
    # The metaschema is checked without format checks: patterns and references are checked above,
    # and its "regex" format check would compile patterns again, unguarded.
    errors += describe_errors(_meta_validator().iter_errors(schema), pointer)
    return unique_errors(errors)


@cache
def _meta_validator() -> Draft202012Validator:
    return Draft202012Validator(Draft202012Validator.META_SCHEMA, registry=referencing.Registry())


def _unusable(schema: dict, pointer: str) -> list[Error]:
    """Depth and size first: later checks (and jsonschema itself) recurse."""
    problems = scan_json(schema, pointer, max_depth=MAX_SCHEMA_DEPTH)
    if not problems and json_size(schema, MAX_SCHEMA_BYTES) > MAX_SCHEMA_BYTES:
        problems = [
            {
                "pointer": pointer,
                "message": "is larger than 64 KiB as JSON; at most 64 KiB is allowed",
            }
        ]
    return problems + _reference_errors(schema, pointer, resolve=False)


def _reference_errors(schema: dict, pointer: str, *, resolve: bool) -> list[Error]:
    """Every `$ref`/`$dynamicRef` anywhere must start with `#`: nothing is fetched or read from disk.

    With `resolve`, a `#...` reference (outside any nested `$id`) must also point at something."""
    errors: list[Error] = []
    stack: list[tuple[Any, str, bool]] = [(schema, pointer, False)]
    while stack:
        node, ptr, under_id = stack.pop()
        if isinstance(node, list):
            stack.extend((item, join_pointer(ptr, i), under_id) for i, item in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        under_id = under_id or (node is not schema and "$id" in node)
        for keyword in ("$ref", "$dynamicRef"):
            ref = node.get(keyword)
            if not isinstance(ref, str):
                continue
            where = join_pointer(ptr, keyword)
            if not ref.startswith("#"):
                errors.append(
                    {
                        "pointer": where,
                        "message": f"refers to {quote_value(ref)} outside this schema; only references inside it (starting with #, e.g. #/$defs/address) are allowed",
                    }
                )
            elif resolve and keyword == "$ref" and not under_id and not _resolves(schema, ref):
                errors.append(
                    {
                        "pointer": where,
                        "message": f"{quote_value(ref)} points to nothing in this schema",
                    }
                )
        stack.extend((value, join_pointer(ptr, key), under_id) for key, value in node.items())
    return errors


def _resolves(schema: dict, ref: str) -> bool:
    resource = DRAFT202012.create_resource(schema)
    try:
        referencing.Registry().resolver_with_root(resource).lookup(ref)
    except (referencing.exceptions.Unresolvable, ValueError, TypeError):
        return False
    return True


def _subschemas(schema: dict, pointer: str) -> Iterator[tuple[dict, str]]:
    """Every subschema of a draft 2020-12 schema with its pointer."""
    stack: list[tuple[Any, str]] = [(schema, pointer)]
    while stack:
        node, ptr = stack.pop()
        if not isinstance(node, dict):
            continue
        yield node, ptr
        for keyword, sub in node.items():
            if keyword in _SUBSCHEMA:
                stack.append((sub, join_pointer(ptr, keyword)))
            elif keyword in _SUBSCHEMA_MAPS and isinstance(sub, dict):
                stack.extend((value, join_pointer(ptr, keyword, key)) for key, value in sub.items())
            elif keyword in _SUBSCHEMA_LISTS and isinstance(sub, list):
                stack.extend((value, join_pointer(ptr, keyword, i)) for i, value in enumerate(sub))


def _pattern_errors(schema: dict, pointer: str) -> list[Error]:
    """jsonschema applies `pattern` and `patternProperties` with Python's `re`, so they must compile."""
    errors = []
    for node, ptr in _subschemas(schema, pointer):
        candidates = [(node.get("pattern"), join_pointer(ptr, "pattern"))]
        if isinstance(node.get("patternProperties"), dict):
            candidates += [
                (key, join_pointer(ptr, "patternProperties", key))
                for key in node["patternProperties"]
            ]
        for pattern, where in candidates:
            if not isinstance(pattern, str):
                continue
            try:
                re.compile(pattern)
            except (re.error, RecursionError, OverflowError) as exc:
                errors.append(
                    {"pointer": where, "message": f"is not a valid regular expression ({exc})"}
                )
    return errors


# --- A company's configuration ---------------------------------------------------------------


def config_validator(schema: dict) -> Draft202012Validator:
    """A draft 2020-12 validator for a configuration: formats are checked, and its registry is
    empty, so a reference is never fetched over the network or read from a file."""
    return Draft202012Validator(
        schema, format_checker=Draft202012Validator.FORMAT_CHECKER, registry=referencing.Registry()
    )


def validate_config(schema: dict | None, config: Any) -> tuple[Any, list[Error]]:
    """Fill in the schema's defaults and validate a configuration (None counts as `{}`).

    Returns (configuration with defaults, errors); pointers are into the configuration itself.
    Never raises for a bad configuration or schema: problems come back as errors.
    """
    if config is None:
        config = {}
    if not isinstance(config, dict):
        return config, [
            {
                "pointer": "",
                "message": f"the configuration must be a mapping of fields, not {_kind(config)}",
            }
        ]
    problems = scan_json(config, "", max_depth=MAX_CONFIG_DEPTH)
    if problems or schema is None:
        return config, unique_errors(problems)
    if not isinstance(schema, dict) or _unusable(schema, ""):
        return config, [
            {
                "pointer": "",
                "message": "the module's configuration schema cannot be used; it must be fixed by its publisher",
            }
        ]
    result = copy_json(config)
    _apply_defaults(schema, result)
    errors: list[Error] = []
    try:
        errors += describe_errors(config_validator(schema).iter_errors(result), echo=False)
    except referencing.exceptions.Unresolvable as exc:
        ref = quote_value(getattr(exc, "ref", "a reference"))
        errors.append(
            {
                "pointer": "",
                "message": f"the module's configuration schema refers to {ref}, which cannot be resolved",
            }
        )
    except Exception:  # an unchecked schema can make jsonschema fail in any way
        errors.append(
            {
                "pointer": "",
                "message": "the module's configuration schema cannot be applied; it must be fixed by its publisher",
            }
        )
    return result, unique_errors(errors)


def _apply_defaults(schema: dict, config: dict) -> None:
    """Set `default`s of missing properties, into nested objects too; a missing nested object is
    created only when it gets a default. Recursion is bounded: the schema is at most 32 deep."""
    props = schema.get("properties")
    if not isinstance(props, dict):
        return
    for name, sub in props.items():
        if not isinstance(sub, dict):
            continue
        if name not in config and "default" in sub:
            config[name] = copy_json(sub["default"])
        if name in config:
            if isinstance(config[name], dict):
                _apply_defaults(sub, config[name])
        elif isinstance(sub.get("properties"), dict):
            filled: dict = {}
            _apply_defaults(sub, filled)
            if filled:
                config[name] = filled


def secret_fields(schema: Any) -> set[str]:
    """Pointers of the properties marked `writeOnly: true` or `format: password`, following
    nested properties, `allOf`/`anyOf`/`oneOf`/`then`/`else` and `#/...` references."""
    secrets: set[str] = set()
    stack: list[tuple[Any, str, int]] = [(schema, "", 0)]
    seen: set[tuple[int, str]] = set()
    while stack:
        node, ptr, depth = stack.pop()
        # The depth cap stops a recursive schema (a tree via $ref) from being walked forever.
        if not isinstance(node, dict) or depth > 2 * MAX_SCHEMA_DEPTH or (id(node), ptr) in seen:
            continue
        seen.add((id(node), ptr))
        if ptr and (node.get("writeOnly") is True or node.get("format") == "password"):
            secrets.add(ptr)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            stack.append((_local_target(schema, ref[1:]), ptr, depth + 1))
        for keyword in ("allOf", "anyOf", "oneOf"):
            if isinstance(node.get(keyword), list):
                stack.extend((sub, ptr, depth + 1) for sub in node[keyword])
        stack.extend((node.get(keyword), ptr, depth + 1) for keyword in ("then", "else"))
        if isinstance(node.get("properties"), dict):
            stack.extend(
                (sub, join_pointer(ptr, name), depth + 1)
                for name, sub in node["properties"].items()
            )
    return secrets


def _local_target(schema: Any, fragment: str) -> Any:
    node = schema
    for token in unquote(fragment).split("/")[1:] if fragment else []:
        if isinstance(node, dict):
            node = node.get(_unescape(token))
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def mask_secrets(schema: Any, config: Any) -> dict:
    """A deep copy of `config` with every secret field that is present replaced by "********"."""
    masked = copy_json(config) if isinstance(config, dict) else {}
    for pointer in secret_fields(schema):
        *parents, last = [_unescape(t) for t in pointer.split("/")[1:]]
        node: Any = masked
        for token in parents:
            node = node.get(token) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            node[last] = MASK
    return masked
