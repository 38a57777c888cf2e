"""A module's configuration schema: checking it at publish time, validating a company's
configuration against it, and masking or keeping its secret values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any
from urllib.parse import unquote

import referencing
import referencing.exceptions
from jsonschema import Draft202012Validator
from referencing.jsonschema import DRAFT202012

from portal.lib.json_errors import (
    Error,
    copy_json,
    describe_errors,
    join_pointer,
    json_size,
    kind_of,
    problem,
    quote_value,
    scan_json,
    schema_mapping,
    unescape_pointer,
    unique_errors,
)

MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32
MAX_CONFIG_DEPTH = 64
MASK = "********"
_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

# --- A module's config_schema --------------------------------------------------------------

_SUBSCHEMA = {"additionalProperties", "items", "contains", "propertyNames", "not", "if", "then"}
_SUBSCHEMA |= {"else", "unevaluatedItems", "unevaluatedProperties", "contentSchema"}
_SUBSCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
_SUBSCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}


def check_config_schema(schema: Any, pointer: str = "/config_schema") -> list[Error]:
    """Problems with a module's config_schema: it must be a valid draft 2020-12 schema whose root
    is `type: object`, at most 64 KiB and 32 levels deep, with `$ref` only to `#...` inside it
    and every pattern a Python regular expression. Pointers start with `pointer`."""
    if not isinstance(schema, dict):
        return [problem(pointer, f"must be a JSON Schema with type: object, not {kind_of(schema)}")]
    # Depth and size first: the other checks (and jsonschema itself) recurse.
    errors = _too_big(schema, pointer)
    if errors:
        return errors
    if schema.get("type") != "object":
        message = 'must be "object": a configuration is a mapping of fields'
        errors.append(problem(join_pointer(pointer, "type"), message))
    if "$schema" in schema and str(schema["$schema"]).rstrip("#") != _DRAFT_2020_12:
        message = f"must be {_DRAFT_2020_12} (only draft 2020-12 is supported) or left out"
        errors.append(problem(join_pointer(pointer, "$schema"), message))
    errors += _reference_errors(schema, pointer, resolve=True)
    errors += _pattern_errors(schema, pointer)
    # Without format checks: patterns and references are checked above, and the metaschema's
    # "regex" format would compile each pattern again, unguarded.
    errors += describe_errors(_meta_validator().iter_errors(schema), pointer)
    return unique_errors(errors)


@cache
def _meta_validator() -> Draft202012Validator:
    return Draft202012Validator(Draft202012Validator.META_SCHEMA, registry=referencing.Registry())


def _too_big(schema: dict, pointer: str) -> list[Error]:
    errors = scan_json(schema, pointer, max_depth=MAX_SCHEMA_DEPTH)
    if not errors and json_size(schema, MAX_SCHEMA_BYTES) > MAX_SCHEMA_BYTES:
        errors = [problem(pointer, "is larger than 64 KiB as JSON, the most allowed")]
    return errors


def _reference_errors(schema: dict, pointer: str, *, resolve: bool) -> list[Error]:
    """Every `$ref`/`$dynamicRef` anywhere must start with `#`: nothing is fetched or read from
    disk. With `resolve`, a `$ref` (outside any nested `$id`) must also point at something.

    Walks every value, not only subschemas: a false alarm in a `default` is cheaper than a miss."""
    errors: list[Error] = []
    resolver = _root_resolver(schema) if resolve else None
    stack: list[tuple[Any, str, bool]] = [(schema, pointer, False)]
    while stack:
        node, ptr, under_id = stack.pop()
        if isinstance(node, list):
            stack.extend((item, join_pointer(ptr, i), under_id) for i, item in enumerate(node))
        if not isinstance(node, dict):
            continue
        under_id = under_id or (node is not schema and "$id" in node)
        for keyword in ("$ref", "$dynamicRef"):
            ref, where = node.get(keyword), join_pointer(ptr, keyword)
            if not isinstance(ref, str):
                continue
            if not ref.startswith("#"):
                only = "only references starting with # (e.g. #/$defs/address) are allowed"
                errors.append(
                    problem(where, f"refers outside this schema ({quote_value(ref)}); {only}")
                )
            elif resolver and keyword == "$ref" and not under_id and not _resolves(resolver, ref):
                errors.append(problem(where, f"{quote_value(ref)} points to nothing here"))
        stack.extend((value, join_pointer(ptr, key), under_id) for key, value in node.items())
    return errors


def _resolves(resolver: referencing.Resolver, ref: str) -> bool:
    try:
        resolver.lookup(ref)
    except (referencing.exceptions.Unresolvable, ValueError, TypeError):
        return False
    return True


def _root_resolver(schema: dict) -> referencing.Resolver | None:
    """A resolver for references from the root, its registry crawled once (an anchor lookup in
    an uncrawled registry crawls the whole schema each time). None if the schema is too odd to
    crawl; the metaschema check then reports why."""
    try:
        resource = DRAFT202012.create_resource(schema)
        uri = resource.id() or ""
        registry = referencing.Registry().with_resource(uri, resource).crawl()
        return registry.resolver(base_uri=uri)
    except Exception:  # any failure here is a schema problem reported elsewhere
        return None


def _subschemas(schema: dict, pointer: str) -> Iterator[tuple[dict, str]]:
    """Every subschema of a draft 2020-12 schema, with its pointer."""
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
    """jsonschema applies `pattern` and `patternProperties` with `re`, so they must compile."""
    errors = []
    for node, ptr in _subschemas(schema, pointer):
        found = [(node.get("pattern"), join_pointer(ptr, "pattern"))]
        found += [
            (key, join_pointer(ptr, "patternProperties", key))
            for key in schema_mapping(node, "patternProperties")
        ]
        for pattern, where in found:
            try:
                if isinstance(pattern, str):
                    re.compile(pattern)
            except (re.error, RecursionError, OverflowError) as exc:
                errors.append(problem(where, f"is not a valid regular expression ({exc})"))
    return errors


# --- A company's configuration ---------------------------------------------------------------


def config_validator(schema: dict) -> Draft202012Validator:
    """A draft 2020-12 validator for configurations: formats are checked, and its reference
    registry is empty, so nothing is ever fetched over the network or read from a file."""
    checker = Draft202012Validator.FORMAT_CHECKER
    return Draft202012Validator(schema, format_checker=checker, registry=referencing.Registry())


def validate_config(schema: dict | None, config: Any) -> tuple[Any, list[Error]]:
    """Fill in the schema's defaults and validate a configuration (None counts as `{}`).

    Returns (configuration with defaults, errors), pointers into the configuration itself.
    Never raises for a bad configuration or schema: problems come back as errors.
    """
    config = {} if config is None else config
    if not isinstance(config, dict):
        return config, [problem("", f"must be a mapping of fields, not {kind_of(config)}")]
    errors = scan_json(config, "", max_depth=MAX_CONFIG_DEPTH)
    if errors or schema is None:
        return config, unique_errors(errors)
    broken = "the module's configuration schema cannot be used; its publisher must fix it"
    if (
        not isinstance(schema, dict)
        or _too_big(schema, "")
        or _reference_errors(schema, "", resolve=False)
    ):
        return config, [problem("", broken)]
    result = copy_json(config)
    _apply_defaults(schema, result)
    try:
        errors = describe_errors(config_validator(schema).iter_errors(result), echo=False)
    except referencing.exceptions.Unresolvable as exc:
        ref = quote_value(getattr(exc, "ref", ""))
        errors = [problem("", f"{broken} (its reference {ref} cannot be resolved)")]
    except Exception:  # an unchecked schema can make jsonschema fail in any way
        errors = [problem("", broken)]
    return result, unique_errors(errors)


def _apply_defaults(schema: dict, config: dict) -> None:
    """Set the `default` of each missing property, into nested objects too; a missing nested
    object is created when defaults fill it, required properties included. Recursion is bounded:
    the schema is at most 32 levels deep."""
    for name, sub in schema_mapping(schema, "properties").items():
        if not isinstance(sub, dict):
            continue
        if name not in config and "default" in sub:
            config[name] = copy_json(sub["default"])
        if isinstance(config.get(name), dict):
            _apply_defaults(sub, config[name])
        elif name not in config and schema_mapping(sub, "properties"):
            filled: dict = {}
            _apply_defaults(sub, filled)
            # Never create an optional object that its own `required` would then make invalid.
            required = sub.get("required") if isinstance(sub.get("required"), list) else []
            if filled and all(key in filled for key in required):
                config[name] = filled


def secret_fields(schema: Any) -> set[str]:
    """Pointers of the properties marked `writeOnly: true` or `format: password`, found through
    nested properties, `allOf`/`anyOf`/`oneOf`/`then`/`else` and `#/...` references."""
    secrets: set[str] = set()
    stack: list[tuple[Any, str, int]] = [(schema, "", 0)]
    seen: set[tuple[int, str]] = set()
    while stack:
        node, ptr, depth = stack.pop()
        # The depth cap stops a recursive schema (a tree through $ref) from being walked forever.
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
        for name, sub in schema_mapping(node, "properties").items():
            stack.append((sub, join_pointer(ptr, name), depth + 1))
    return secrets


def _local_target(schema: Any, fragment: str) -> Any:
    node = schema
    for token in unquote(fragment).split("/")[1:] if fragment else []:
        if isinstance(node, dict):
            node = node.get(unescape_pointer(token))
        elif isinstance(node, list) and token.isdecimal() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def mask_secrets(schema: Any, config: Any) -> dict:
    """A deep copy of `config` with every secret field that is present replaced by "********"."""
    masked = copy_json(config) if isinstance(config, dict) else {}
    for pointer in secret_fields(schema):
        *parents, last = [unescape_pointer(token) for token in pointer.split("/")[1:]]
        node: Any = masked
        for token in parents:
            node = node.get(token) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            node[last] = MASK
    return masked


def keep_secrets(schema: Any, new: Any, stored: Any) -> Any:
    """`new` with every secret sent back as "********" replaced by its value in `stored`
    (api.md: sending the mask back keeps the stored value), or left out when nothing is
    stored there. Anything but an object comes back as it is, for validation to refuse."""
    if not isinstance(new, dict):
        return new
    result = copy_json(new)
    for pointer in secret_fields(schema):
        *parents, last = [unescape_pointer(token) for token in pointer.split("/")[1:]]
        node: Any = result
        old: Any = stored
        for token in parents:
            node = node.get(token) if isinstance(node, dict) else None
            old = old.get(token) if isinstance(old, dict) else None
        if isinstance(node, dict) and node.get(last) == MASK:
            if isinstance(old, dict) and last in old:
                node[last] = old[last]
            else:
                del node[last]
    return result
