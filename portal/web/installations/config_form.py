"""Configuration forms generated on the server from a release's `config_schema`.

`fields_for` turns the schema (draft 2020-12, root type object) into field descriptors that
templates/installations/_config_fields.html renders: text, password (secrets are never shown
back), select, checkbox, number with min/max, lists one per line, nested objects as
fieldsets. Only what a form cannot express (`oneOf`/`anyOf`/`allOf`, `$ref`,
`patternProperties`, `additionalProperties` schemas, arrays of objects, ...) gets a raw JSON
editor, for that part alone. `parse_form` reads the posted form back into a configuration,
with the same walk, so input names and the error slots always agree.

Input names are the prefix followed by the JSON Pointer into the configuration, e.g.
`config/smtp/host`; the JSON editor of an object's other keys is `<object name>/~extra`
(a `~` followed by a letter never occurs in an escaped pointer, so it cannot collide).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from portal.lib.config_schema import MASK, mask_secrets, secret_fields
from portal.lib.json_errors import join_pointer

Error = dict[str, str]
EXTRA = "~extra"
MAX_DEPTH = 8  # nested fieldsets beyond this are edited as JSON
MAX_TEXT = 64 * 1024  # one input's text; the whole configuration is capped by the service
_UNEXPRESSIBLE = ("oneOf", "anyOf", "allOf", "not", "if", "$ref", "$dynamicRef")
_SCALARS = ("string", "integer", "number")
_INPUT_TYPES = {"email": "email", "idn-email": "email", "uri": "url", "iri": "url"}


@dataclass
class Option:
    value: str  # what the <option> posts
    label: str
    data: Any  # the JSON value it stands for


@dataclass
class Field:
    """One control of the form (or a fieldset of them), as the template renders it."""

    kind: str  # text | password | select | checkbox | number | list | object | json
    key: str  # the property name ("" for an object's extra-keys editor)
    name: str  # the input's name: prefix + pointer
    pointer: str  # JSON Pointer into the configuration
    id: str
    label: str
    description: str = ""
    required: bool = False
    value: Any = ""  # text of the control; a bool for checkboxes; never a secret
    default: Any = None
    input_type: str = "text"
    item_type: str = "string"  # numbers: integer | number; lists: the items' type
    minimum: Any = None
    maximum: Any = None
    max_length: int | None = None
    options: list[Option] = field(default_factory=list)
    secret_set: bool = False  # a secret is stored: blank keeps it
    extra: bool = False  # JSON editor of an object's keys beyond its properties
    known: tuple[str, ...] = ()  # extra editors: the keys that have their own fields
    children: list[Field] = field(default_factory=list)
    errors: list[Error] = field(default_factory=list)

    @property
    def help_id(self) -> str:
        return f"{self.id}-help"

    @property
    def error_id(self) -> str:
        return f"{self.id}-errors"

    @property
    def required_attr(self) -> bool:
        """Whether the control needs a value (a stored secret may be left blank)."""
        return self.required and not self.secret_set

    @property
    def help_text(self) -> str:
        """The description, plus how to write a list or JSON."""
        how = {"list": "One per line.", "json": "Written as JSON: the form cannot show this part."}
        hint = "" if self.extra else how.get(self.kind, "")
        return " ".join(part for part in (self.description, hint) if part)

    @property
    def described_by(self) -> str:
        ids = [self.help_id] if self.help_text else []
        if self.secret_set:
            ids.append(f"{self.id}-note")
        return " ".join([*ids, self.error_id])


class Fields(list):
    """The top-level fields of a form; `general` holds errors no field owns (e.g. at `""`)."""

    general: list[Error]

    def __init__(self, items=(), general=None):
        super().__init__(items)
        self.general = list(general or [])

    def walk(self):
        """Every field, fieldsets and their children included, in document order."""
        stack = list(reversed(self))
        while stack:
            item = stack.pop()
            yield item
            stack.extend(reversed(item.children))


class _Ids:
    """HTML ids derived from input names, unique within one form."""

    def __init__(self):
        self.used: set[str] = set()

    def make(self, name: str) -> str:
        base = "cf-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "field")
        candidate, n = base, 1
        while candidate in self.used:
            n += 1
            candidate = f"{base}-{n}"
        self.used.add(candidate)
        return candidate


# --- Schema → fields ---------------------------------------------------------------------


def fields_for(
    schema: Any, values: Any = None, errors: list[Error] | None = None, prefix: str = "config"
) -> Fields:
    """The form's fields for `schema`, showing `values` (else the schema's defaults; secrets
    never) and each of `errors` (pointers into the configuration) beside its field."""
    root = schema if isinstance(schema, dict) else {}
    shown = mask_secrets(root, values) if isinstance(values, dict) else {}
    walker = _Walker(root, prefix)
    fields = Fields(walker.object_fields(root, shown, "", 0))
    for error in errors or []:
        if not _place(fields, error):
            fields.general.append(error)
    return fields


class _Walker:
    def __init__(self, root: dict, prefix: str):
        self.root = root
        self.prefix = prefix
        self.secrets = secret_fields(root)
        self.ids = _Ids()

    def object_fields(self, node: dict, values: dict, pointer: str, depth: int) -> list[Field]:
        props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
        required = node.get("required") if isinstance(node.get("required"), list) else []
        fields = []
        for key, sub in props.items():
            if sub is False:
                continue  # a property that may never be set has no control
            fields.append(
                self.field(
                    str(key), sub, values, join_pointer(pointer, key), key in required, depth
                )
            )
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) or isinstance(node.get("patternProperties"), dict):
            fields.append(self.extra_editor(node, values, pointer, tuple(map(str, props))))
        return fields

    def field(self, key, sub, values, pointer, required, depth) -> Field:
        name = self.prefix + pointer
        sub = sub if isinstance(sub, dict) else {}
        present = key in values
        value = values.get(key)
        f = Field(
            kind="json",
            key=key,
            name=name,
            pointer=pointer,
            id=self.ids.make(name),
            label=str(sub.get("title") or key),
            description=str(sub.get("description") or ""),
            required=required,
            default=sub.get("default"),
        )
        kind, type_ = _kind_of(sub, depth)
        secret = pointer in self.secrets and kind not in ("object", "checkbox")
        if secret:
            # Never shown back, not even masked or as a default: blank keeps what is stored.
            f.secret_set = present and value not in (None, "")
            kind = "password" if kind == "text" else kind
            present, value, f.default = False, None, None
        f.kind = kind
        shown = value if present else f.default
        if kind == "object":
            nested = value if isinstance(value, dict) else {}
            f.children = self.object_fields(sub, nested, pointer, depth + 1)
        elif kind == "password":
            f.value = ""
        elif kind == "checkbox":
            f.value = bool(shown) if isinstance(shown, bool) else False
        elif kind == "select":
            f.options = _options(sub)
            f.value = next((o.value for o in f.options if _same(o.data, shown)), "")
        elif kind == "number":
            f.item_type, f.minimum, f.maximum = type_, sub.get("minimum"), sub.get("maximum")
            f.value = _text(shown)
        elif kind == "list":
            f.item_type = type_
            f.value = "\n".join(map(_text, shown)) if isinstance(shown, list) else _text(shown)
        elif kind == "text":
            f.input_type = _INPUT_TYPES.get(sub.get("format"), "text")
            f.max_length = sub.get("maxLength") if isinstance(sub.get("maxLength"), int) else None
            f.value = _text(shown)
        else:
            f.value = "" if shown is None and not present else _json_text(shown)
        return f

    def extra_editor(self, node: dict, values: dict, pointer: str, known: tuple) -> Field:
        name = f"{self.prefix}{pointer}/{EXTRA}"  # unescaped on purpose: never a property
        others = {k: v for k, v in values.items() if k not in known}
        where = f"“{pointer.rsplit('/', 1)[-1]}”" if pointer else "the configuration"
        return Field(
            kind="json",
            key="",
            name=name,
            pointer=pointer,
            id=self.ids.make(name),
            label=f"Other fields of {where} (JSON object)" if known else "Fields (JSON object)",
            description="The form cannot show these fields: write them as a JSON object.",
            value=_json_text(others) if others else "",
            extra=True,
            known=known,
        )


def _kind_of(sub: dict, depth: int) -> tuple[str, str]:
    """(widget kind, JSON type) for a property schema; "json" when a form cannot express it."""
    if any(k in sub for k in _UNEXPRESSIBLE):
        return "json", ""
    types = sub.get("type")
    types = [types] if isinstance(types, str) else types if isinstance(types, list) else []
    types = [t for t in types if t != "null"]
    if len(types) > 1:
        return "json", ""
    type_ = types[0] if types else ""
    choices = sub.get("enum") if isinstance(sub.get("enum"), list) else None
    if choices is None and "const" in sub:
        choices = [sub["const"]]
    if choices and type_ in ("", "string", "integer", "number", "boolean"):
        return "select", type_
    if not type_ and isinstance(sub.get("properties"), dict):
        type_ = "object"
    if type_ == "boolean":
        return "checkbox", type_
    if type_ in ("integer", "number"):
        return "number", type_
    if type_ == "string":
        secret = sub.get("writeOnly") is True or sub.get("format") == "password"
        return ("password" if secret else "text"), type_
    if type_ == "array":
        items = sub.get("items")
        item_types = items.get("type") if isinstance(items, dict) else None
        plain = isinstance(items, dict) and not any(k in items for k in _UNEXPRESSIBLE)
        if plain and item_types in _SCALARS and "enum" not in items and "prefixItems" not in sub:
            return "list", item_types
        return "json", ""
    if type_ == "object" and isinstance(sub.get("properties"), dict) and depth < MAX_DEPTH:
        return "object", type_
    return "json", ""


def _options(sub: dict) -> list[Option]:
    choices = sub["enum"] if isinstance(sub.get("enum"), list) else [sub.get("const")]
    texts = all(isinstance(c, str) for c in choices)
    return [
        Option(
            value=c if texts else json.dumps(c), label=_text(c) if texts else _json_text(c), data=c
        )
        for c in choices
    ]


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _place(fields: list[Field], error: Error) -> bool:
    """Attach an error to the deepest field its pointer falls in; an object's extra-keys
    editor takes the keys without a field of their own. False when no field owns it."""
    pointer = error.get("pointer", "")
    for f in fields:
        if f.extra or not (pointer == f.pointer or pointer.startswith(f.pointer + "/")):
            continue
        if f.kind == "object" and pointer != f.pointer and _place(f.children, error):
            return True
        f.errors.append(error)
        return True
    for f in fields:
        if f.extra and pointer.startswith(f.pointer + "/"):
            f.errors.append(error)
            return True
    return False


# --- Form → configuration ----------------------------------------------------------------


def parse_form(
    schema: Any, formdata, prefix: str = "config", existing: dict | None = None
) -> tuple[dict, list[Error]]:
    """The configuration the form posted, and the errors only the form can see (JSON that
    does not parse). Blank inputs are "not provided"; a blank secret that `existing` has
    becomes "********", which the installations service keeps as it is stored."""
    fields = fields_for(schema, existing or {}, None, prefix)
    errors: list[Error] = []
    config, _touched = _read_object(fields, formdata, errors)
    return config, errors


def config_from_form(schema: Any, formdata, prefix: str = "config", existing=None) -> dict:
    """The configuration the form posted. Text that is not JSON where JSON was expected is
    kept as text, so the schema validator reports that field (parse_form says why)."""
    return parse_form(schema, formdata, prefix, existing)[0]


def _read_object(fields: list[Field], form, errors: list[Error]) -> tuple[dict, bool]:
    """(values, whether anything beyond unchanged checkboxes was given)."""
    result: dict = {}
    touched = False
    for f in fields:
        if f.extra:
            continue
        if f.kind == "object":
            value, sub_touched = _read_object(f.children, form, errors)
            if sub_touched or f.required:
                result[f.key] = value
                touched = True
            continue
        if f.kind == "checkbox":
            posted = form.getlist(f.name)
            if posted:
                result[f.key] = any(v in ("true", "on", "1") for v in posted)
                touched = touched or result[f.key] != (f.default is True)
            continue
        raw = _raw(form, f)
        if raw is None:
            if f.secret_set:  # kept as stored, so its object is kept too
                result[f.key], touched = MASK, True
            continue
        result[f.key] = _convert(f, raw, errors)
        touched = True
    for f in fields:
        if f.extra:
            touched = _read_extra(f, form, result, errors) or touched
    return result, touched


def _raw(form, f: Field) -> str | None:
    """The posted text of a field, None when blank (not provided)."""
    if f.kind == "list":
        lines = [line for v in form.getlist(f.name) for line in str(v).splitlines()]
        text = "\n".join(line.strip() for line in lines if line.strip())
    else:
        text = form.get(f.name)
    if text is None or not str(text).strip():
        return None
    return str(text)


def _convert(f: Field, raw: str, errors: list[Error]) -> Any:
    if len(raw) > MAX_TEXT:
        errors.append({"pointer": f.pointer, "message": "is longer than 64 KiB"})
        return raw[:64]
    if f.kind == "number":
        return _number(raw.strip(), f.item_type)
    if f.kind == "select":
        return next((o.data for o in f.options if o.value == raw), raw)
    if f.kind == "list":
        return [
            _number(line, f.item_type) if f.item_type != "string" else line
            for line in raw.splitlines()
        ]
    if f.kind == "json":
        return _json(raw, f.pointer, errors)
    return raw


def _number(text: str, type_: str) -> Any:
    """An int or float from the text; the text itself when it is not a finite number."""
    if re.fullmatch(r"[+-]?\d{1,300}", text):
        return int(text)
    if type_ == "number" and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        number = float(text)
        if math.isfinite(number):
            return number
    return text


def _json(raw: str, pointer: str, errors: list[Error]) -> Any:
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(raw, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        message = f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    except RecursionError:
        message = "is not valid JSON: nested too deeply"
    except ValueError as exc:
        message = f"is not valid JSON: {exc}"
    errors.append({"pointer": pointer, "message": message})
    return raw


def editor_pointer(f: Field) -> str:
    """Where errors of an extra-keys editor's own text point: `<object>/~extra`, which no
    escaped pointer into the configuration can equal."""
    return f"{f.pointer}/{EXTRA}"


def _read_extra(f: Field, form, result: dict, errors: list[Error]) -> bool:
    raw = _raw(form, f)
    if raw is None:
        return False
    if len(raw) > MAX_TEXT:
        errors.append({"pointer": editor_pointer(f), "message": "is longer than 64 KiB"})
        return True
    before = len(errors)
    where = editor_pointer(f)
    value = _json(raw, where, errors)
    if len(errors) > before:
        return True
    if not isinstance(value, dict):
        errors.append({"pointer": where, "message": "must be a JSON object of the other fields"})
        return True
    for key, item in value.items():
        if key in f.known:
            message = f"“{key}” has its own field above: set it there"
            errors.append({"pointer": where, "message": message})
        else:
            result[key] = item
    return True
