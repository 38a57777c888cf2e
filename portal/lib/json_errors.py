"""JSON helpers shared by the manifest and configuration validators: pointers, size, depth,
and jsonschema errors turned into `{"pointer", "message"}` entries. Data is walked with an
explicit stack, so input nested thousands of levels deep gives an error, never a
RecursionError.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable
from typing import Any

from jsonschema.exceptions import ValidationError, best_match

# A 256 KiB document holds far fewer values; more can only come from shared Python objects.
_MAX_NODES = 500_000

Error = dict[str, str]


def problem(pointer: str, message: str) -> Error:
    """One validation error entry, as DomainError(errors=...) and the API carry them."""
    return {"pointer": pointer, "message": message}


# --- JSON helpers --------------------------------------------------------------------------


def join_pointer(base: str, *tokens: object) -> str:
    """`base` extended by tokens, escaped as RFC 6901 says (`~` as `~0`, `/` as `~1`)."""
    return base + "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def unescape_pointer(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def unique_errors(entries: Iterable[Error]) -> list[Error]:
    """One entry per pointer (the first wins), in document order."""
    by_pointer: dict[str, str] = {}
    for entry in entries:
        by_pointer.setdefault(entry["pointer"], entry["message"])

    def order(pointer: str) -> list[tuple[int, int, str]]:
        return [(0, int(t), "") if t.isdecimal() else (1, 0, t) for t in pointer.split("/")]

    return [problem(p, by_pointer[p]) for p in sorted(by_pointer, key=order)]


def json_size(value: Any, limit: int) -> int:
    """Bytes of `value` as compact UTF-8 JSON; counting stops soon after `limit` is passed."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, dict):  # braces, a colon per key and commas between entries
            total += 1 + 2 * len(item) + (not item) + sum(_scalar_size(str(k)) for k in item)
            stack.extend(item.values())
        elif isinstance(item, list):
            total += 1 + max(len(item), 1)
            stack.extend(item)
        else:
            total += _scalar_size(item)
    return total


def _scalar_size(value: Any) -> int:
    try:
        return len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    except ValueError:  # an int too long to print: over any limit
        return 1 << 40
    except TypeError:  # not JSON at all; scan_json reports it
        return 0


def scan_json(value: Any, pointer: str = "", *, max_depth: int) -> list[Error]:
    """What makes `value` unfit to handle as JSON: nesting deeper than `max_depth` (the value is
    level 1), keys that are not text, infinite or enormous numbers, values of other types."""
    errors: list[Error] = []
    stack = [(value, pointer, 1)]
    for _ in range(_MAX_NODES):
        if not stack:
            return errors
        item, ptr, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                too_deep = f"is nested more than {max_depth} levels deep, the most allowed"
                return [*errors, problem(pointer, too_deep)]
            for key, sub in item.items() if isinstance(item, dict) else enumerate(item):
                if isinstance(item, dict) and not isinstance(key, str):
                    errors.append(problem(join_pointer(ptr, key), "keys must be text"))
                else:
                    stack.append((sub, join_pointer(ptr, key), depth + 1))
        elif isinstance(item, int) and not isinstance(item, bool) and item.bit_length() > 10_000:
            errors.append(problem(ptr, "is a number too large to handle"))
        elif isinstance(item, float) and not math.isfinite(item):
            errors.append(problem(ptr, "must be a finite number (not .inf or .nan)"))
        elif not (item is None or isinstance(item, str | int | float)):
            errors.append(problem(ptr, f"is not a JSON value ({type(item).__name__})"))
    return [*errors, problem(pointer, "holds too many values")]


def copy_json(value: Any) -> Any:
    """A deep copy of JSON-like data, made without recursion so any nesting is safe."""
    if not isinstance(value, dict | list):
        return value
    root: Any = type(value)()
    stack = [(value, root)]
    while stack:
        source, target = stack.pop()
        for key, item in source.items() if isinstance(source, dict) else enumerate(source):
            copied = type(item)() if isinstance(item, dict | list) else item
            if copied is not item:
                stack.append((item, copied))
            if isinstance(target, dict):
                target[key] = copied
            else:
                target.append(copied)
    return root


# --- jsonschema errors in words ------------------------------------------------------------

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
_LIMIT_WORDS = {
    "maxLength": "must be at most {} characters long",
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "exclusiveMinimum": "must be greater than {}",
    "exclusiveMaximum": "must be less than {}",
    "multipleOf": "must be a multiple of {}",
    "minItems": "must have at least {} item(s)",
    "maxItems": "must have at most {} items",
    "minProperties": "must have at least {} field(s)",
    "maxProperties": "must have at most {} fields",
    "contains": "must contain at least one item of the expected form",
    "not": "is not allowed here",
    "oneOf": "matches more than one of the allowed forms; it must match exactly one",
    "anyOf": "does not match any of the allowed forms",
    None: "is not allowed here",  # a `false` schema
}


def quote_value(value: Any, limit: int = 60) -> str:
    """A short, JSON-looking rendering of a value for messages."""
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= limit else text[: limit - 4] + '..."'


def kind_of(value: Any) -> str:
    """What a value is, in words ("text", "a number", ...)."""
    if value is None or isinstance(value, bool):
        return "empty (null)" if value is None else "a boolean"
    if isinstance(value, int | float | str):
        return "text" if isinstance(value, str) else "a number"
    return "a list" if isinstance(value, list) else "a mapping"


def _quoting_hint(value: bool | int | float, pointer: str) -> str:
    """YAML reads `1.10`, `2024` or `yes` as a number or a boolean; say how to keep it text."""
    token = unescape_pointer(pointer.rsplit("/", 1)[-1])
    prefix = "- " if token.isdecimal() or not token else f"{token}: "
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
    return f'was read as the number {value}, not as text; put it in quotes: {prefix}"{value}"'


def describe_errors(
    errors: Iterable[ValidationError], base: str = "", *, echo: bool = True
) -> list[Error]:
    """`{"pointer", "message"}` entries for jsonschema errors; pointers are `base` + the path.

    With `echo=False` no message repeats the submitted value (configurations hold secrets).
    """
    return [entry for error in errors for entry in _describe(error, base, echo)]


def _describe(error: ValidationError, base: str, echo: bool) -> list[Error]:
    pointer = join_pointer(base, *error.absolute_path)
    keyword, expected, instance = error.validator, error.validator_value, error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    if "propertyNames" in error.absolute_schema_path and isinstance(instance, str):
        message = _message(error, schema, pointer, echo)
        return [problem(join_pointer(pointer, instance), f"is not an allowed key: {message}")]
    if keyword == "required" and isinstance(instance, dict):
        props = schema_mapping(schema, "properties")
        missing = [name for name in expected if isinstance(name, str) and name not in instance]
        return [
            problem(join_pointer(pointer, name), _required(props.get(name))) for name in missing
        ]
    if keyword == "additionalProperties" and expected is False and isinstance(instance, dict):
        extra = [key for key in instance if _is_extra(key, schema)]
        return [problem(join_pointer(pointer, key), _unknown(key, schema)) for key in extra]
    if keyword == "uniqueItems" and isinstance(instance, list):
        return [_repeated_item(instance, pointer)]
    if keyword in ("anyOf", "oneOf") and error.context:
        return _describe(best_match(error.context), base, echo)
    return [problem(pointer, _message(error, schema, pointer, echo))]


def _message(error: ValidationError, schema: dict, pointer: str, echo: bool) -> str:
    keyword, expected, instance = error.validator, error.validator_value, error.instance
    if keyword == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        if echo and types == ["string"] and isinstance(instance, bool | int | float):
            return _quoting_hint(instance, pointer)
        words = " or ".join(_TYPE_WORDS.get(t, str(t)) for t in types)
        return f"must be {words}, not {kind_of(instance)}"
    if keyword in ("enum", "const"):
        return _choice(expected if keyword == "enum" else [expected], instance, echo)
    if keyword == "pattern":
        rule = schema.get("description")
        if expected == r"\S" or not rule:
            return "must not be blank" if expected == r"\S" else f"must match {expected}"
        return (
            f"{quote_value(instance) + ' ' if echo else ''}does not have the expected form. {rule}"
        )
    if keyword == "format":
        return f"must be {_FORMAT_WORDS.get(expected, f'a valid {expected}')}"
    if keyword == "minLength":
        return "must not be empty" if expected == 1 else f"must be at least {expected} characters"
    if keyword in _LIMIT_WORDS:
        return _LIMIT_WORDS[keyword].format(expected)
    return error.message[:300] if echo else f"is not valid (it fails the {keyword} rule)"


def _choice(allowed: list, instance: Any, echo: bool) -> str:
    message = "must be one of " + ", ".join(
        a if isinstance(a, str) else quote_value(a) for a in allowed
    )
    if echo and isinstance(instance, str):
        for variant in (instance.upper(), instance.lower()):
            if variant != instance and variant in allowed:
                return f"{message} (write it as {variant})"
        close = difflib.get_close_matches(instance, [a for a in allowed if isinstance(a, str)], 1)
        if close:
            return f'{message}; did you mean "{close[0]}"?'
    return message


def schema_mapping(schema: dict, keyword: str) -> dict:
    value = schema.get(keyword)
    return value if isinstance(value, dict) else {}


def _required(prop_schema: Any) -> str:
    rule = prop_schema.get("description") if isinstance(prop_schema, dict) else None
    return f"is required: {rule}" if isinstance(rule, str) and rule else "is required"


def _is_extra(key: str, schema: dict) -> bool:
    if key in schema_mapping(schema, "properties"):
        return False
    for pattern in schema_mapping(schema, "patternProperties"):
        try:
            if re.search(pattern, key):
                return False
        except (re.error, RecursionError, OverflowError, TypeError):
            continue
    return True


def _unknown(key: str, schema: dict) -> str:
    known = [name for name in schema_mapping(schema, "properties") if isinstance(name, str)]
    message = f"unknown field {quote_value(key)}"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        message += f'; did you mean "{close[0]}"?'
    elif 0 < len(known) <= 15:
        message += "; expected one of " + ", ".join(known)
    if "^x-" in schema_mapping(schema, "patternProperties"):
        message += ' (custom fields must start with "x-")'
    return message


def _repeated_item(items: list, pointer: str) -> Error:
    first_at: dict[str, int] = {}
    for index, item in enumerate(items):
        try:
            key = json.dumps(item, sort_keys=True)
        except (TypeError, ValueError):
            break
        if key in first_at:
            message = (
                f"repeats the item at {join_pointer(pointer, first_at[key])}; items must be unique"
            )
            return problem(join_pointer(pointer, index), message)
        first_at[key] = index
    return problem(pointer, "must not repeat items")
