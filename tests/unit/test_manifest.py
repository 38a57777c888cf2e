"""The manifest validator (spec/manifest.md) and configuration schemas: every rule has a failing
case, asserted by its JSON Pointer and status, not by message wording."""

from __future__ import annotations

import copy
import http.server
import json
import re
import threading
import time
import urllib.request

import pytest
import referencing.exceptions
from jsonschema import Draft202012Validator

from portal.lib.config_schema import (
    check_config_schema,
    config_validator,
    mask_secrets,
    secret_fields,
    validate_config,
)
from portal.services.errors import BadRequest, TooLarge, ValidationFailed
from portal.services.publishing.manifest import (
    MAX_MANIFEST_BYTES,
    check_manifest,
    load_manifest_json,
    load_manifest_yaml,
    manifest_schema,
    validate_manifest,
)

# The original design's example, exactly as spec/manifest.md shows it.
SPEC_EXAMPLE = """\
name: my-module
version: 1.0.0
description: My custom business module
author: Developer Name

dependencies:
  - name: business-object-framework
    version: ">=1.0.0"
    type: module

entry_points:
  main: my_module.main:main

endpoints:
  - path: /my-endpoint
    method: GET
    handler: my_module.handlers:get_data

config_schema:
  type: object
  properties:
    api_key:
      type: string
      description: API key for external service
  required:
    - api_key
"""

LINE_AND_COLUMN = re.compile(r"line \d+, column \d+")


def manifest(**changes) -> dict:
    """A small valid manifest with `changes` applied (a value of None removes the field)."""
    data = {"name": "my-module", "version": "1.0.0", "description": "Does things", "author": "Ann"}
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def errors_of(data) -> dict[str, str]:
    _, errors = validate_manifest(data)
    return {error["pointer"]: error["message"] for error in errors}


def nested(levels: int) -> dict:
    """An object schema `levels` dicts deep, built without recursion."""
    root = node = {"type": "object"}
    for _ in range(levels - 1):
        node["not"] = {}
        node = node["not"]
    return root


def assert_bad_yaml(text: str | bytes) -> BadRequest:
    with pytest.raises(BadRequest) as exc:
        load_manifest_yaml(text)
    assert exc.value.status == 400
    assert LINE_AND_COLUMN.search(exc.value.message)
    assert exc.value.errors[0]["pointer"] == ""
    assert LINE_AND_COLUMN.search(exc.value.errors[0]["message"])
    return exc.value


# --- The example and the schema file ---------------------------------------------------------


def test_the_spec_example_is_valid_as_it_stands():
    normalized = check_manifest(load_manifest_yaml(SPEC_EXAMPLE))

    assert normalized["name"] == "my-module"
    assert normalized["version"] == "1.0.0"
    assert normalized["dependencies"] == [
        {
            "name": "business-object-framework",
            "version": ">=1.0.0",
            "type": "module",
            "optional": False,
        }
    ]


def test_the_spec_example_is_also_valid_sent_as_json():
    data = load_manifest_json(json.loads(json.dumps(load_manifest_yaml(SPEC_EXAMPLE))))

    assert validate_manifest(data)[1] == []


def test_normalizing_fills_dependency_defaults_and_keeps_x_fields():
    normalized = check_manifest(manifest(dependencies=[{"name": "invoices"}], **{"x-team": "ops"}))

    assert normalized["dependencies"] == [
        {"name": "invoices", "version": "*", "type": "module", "optional": False}
    ]
    assert normalized["x-team"] == "ops"


def test_normalizing_does_not_touch_the_submitted_manifest():
    data = manifest(dependencies=[{"name": "invoices"}])
    before = copy.deepcopy(data)

    check_manifest(data)

    assert data == before


def test_the_schema_file_is_a_draft_2020_12_schema_editors_can_use_on_the_example():
    schema = manifest_schema()

    Draft202012Validator.check_schema(schema)
    assert schema["$id"] and schema["title"]
    assert schema["additionalProperties"] is False and "^x-" in schema["patternProperties"]
    assert sorted(schema["required"]) == ["author", "description", "name", "version"]
    assert Draft202012Validator(schema).is_valid(load_manifest_yaml(SPEC_EXAMPLE))
    assert not Draft202012Validator(schema).is_valid(manifest(name="Bad_Name"))


def test_check_manifest_raises_a_422_listing_every_error():
    with pytest.raises(ValidationFailed) as exc:
        check_manifest(manifest(name="Bad", version="1.0", author=" ", colour="red"))

    assert exc.value.status == 422
    assert set(exc.value.fields) == {"/name", "/version", "/author", "/colour"}


# --- Reading YAML ----------------------------------------------------------------------------


def test_a_yaml_syntax_error_is_a_400_with_line_and_column():
    error = assert_bad_yaml("name: my-module\nversion: [1.0.0\n")

    assert "line 3" in error.message or "line 2" in error.message


def test_a_python_tag_is_a_400_with_line_and_column():
    error = assert_bad_yaml("name: !!python/object/apply:os.system ['echo pwned']\n")

    assert "line 1, column 7" in error.message


@pytest.mark.parametrize(
    "text",
    [
        "name: !foo bar\n",
        "data: !!binary aGVsbG8=\n",
        "when: !!timestamp 2024-01-01\n",
        "s: !!set {a}\n",
    ],
)
def test_custom_tags_and_tags_beyond_the_core_types_are_a_400(text):
    assert_bad_yaml(text)


def test_a_billion_laughs_alias_bomb_is_refused_within_a_second():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    started = time.perf_counter()

    assert_bad_yaml("\n".join(lines) + "\n")

    assert time.perf_counter() - started < 1


def test_an_anchor_alone_is_refused_too():
    assert_bad_yaml("name: &n my-module\n")


def test_bytes_that_are_not_utf8_are_a_400_with_line_and_column():
    error = assert_bad_yaml("name: my-module\nauthor: Jos\xe9\n".encode("latin-1"))

    assert "line 2, column 12" in error.message


def test_a_utf8_byte_order_mark_is_accepted():
    assert load_manifest_yaml("\ufeffname: x\n".encode())["name"] == "x"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n", "null\n"])
def test_an_empty_document_or_a_top_level_that_is_not_a_mapping_is_a_400(text):
    assert_bad_yaml(text)


def test_more_than_one_document_is_a_400():
    assert_bad_yaml("name: a\n---\nname: b\n")


def test_control_characters_are_a_400_with_line_and_column():
    assert_bad_yaml("name: my-module\ndescription: a\x00b\n")


def test_deep_flow_nesting_is_refused_quickly_with_line_and_column():
    started = time.perf_counter()

    assert_bad_yaml("x-deep: " + "[" * 100_000 + "]" * 100_000)

    assert time.perf_counter() - started < 1


def test_a_duplicate_key_is_a_422_naming_the_key_and_pointing_to_it():
    text = "name: my-module\ndependencies:\n  - name: a-b\n    name: c-d\n"

    with pytest.raises(ValidationFailed) as exc:
        load_manifest_yaml(text)

    assert exc.value.status == 422
    assert list(exc.value.fields) == ["/dependencies/0/name"]
    assert 'duplicate key "name"' in exc.value.fields["/dependencies/0/name"]


def test_a_duplicate_top_level_key_is_a_422():
    with pytest.raises(ValidationFailed) as exc:
        load_manifest_yaml("name: a\nname: b\n")

    assert "/name" in exc.value.fields


def test_a_key_yaml_reads_as_a_boolean_or_a_number_is_a_422_with_a_quoting_hint():
    with pytest.raises(ValidationFailed) as exc:
        load_manifest_yaml("name: my-module\nyes: 1\n")

    assert "quotes" in exc.value.fields["/yes"]


def test_a_list_as_a_key_is_a_400():
    assert_bad_yaml("? [a, b]\n: 1\n")


def test_scalars_keep_the_safe_loader_types_but_timestamps_stay_text():
    data = load_manifest_yaml("version: 1.10\nreleased: 2024-01-31\nn: 3\nok: true\nnone: ~\n")

    assert data == {"version": 1.1, "released": "2024-01-31", "n": 3, "ok": True, "none": None}


def test_merge_keys_are_ordinary_keys_and_so_unknown_fields():
    assert "/<<" in errors_of(load_manifest_yaml("<<: {a: 1}\nname: my-module\n"))


# --- Size ------------------------------------------------------------------------------------


def test_a_yaml_manifest_over_256_kib_is_a_413_as_text_and_as_bytes():
    text = "name: my-module\ndescription: " + "x" * (300 * 1024) + "\n"

    for raw in (text, text.encode()):
        with pytest.raises(TooLarge) as exc:
            load_manifest_yaml(raw)
        assert exc.value.status == 413


def test_a_json_manifest_over_256_kib_is_a_413():
    with pytest.raises(TooLarge) as exc:
        load_manifest_json(manifest(**{"x-padding": ["x" * 1024] * 300}))

    assert exc.value.status == 413


def test_a_manifest_just_under_the_limit_is_read():
    padding = "x" * (MAX_MANIFEST_BYTES - 1024)

    assert load_manifest_json(manifest(**{"x-padding": padding}))["x-padding"] == padding


def test_a_json_manifest_that_is_not_an_object_is_a_422():
    with pytest.raises(ValidationFailed) as exc:
        load_manifest_json(["name", "my-module"])

    assert exc.value.status == 422 and "" in exc.value.fields


# --- Top-level fields ------------------------------------------------------------------------


def test_every_missing_required_field_is_reported():
    assert set(errors_of({})) == {"/name", "/version", "/description", "/author"}


def test_an_unknown_top_level_field_is_an_error_with_a_did_you_mean_hint():
    errors = errors_of(manifest(dependecies=[]))

    assert list(errors) == ["/dependecies"]
    assert "dependencies" in errors["/dependecies"]


def test_x_prefixed_fields_are_kept_and_pointers_are_escaped():
    errors = errors_of(manifest(**{"x-anything": {"a": [1]}, "a/b~c": 1}))

    assert list(errors) == ["/a~1b~0c"]


@pytest.mark.parametrize(
    "name",
    [
        "My-Module",
        "a",
        "1abc",
        "-abc",
        "my--module",
        "my-module-",
        "my_module",
        "x" * 65,
        "my-module\n",
        "modulé",
    ],
)
def test_an_invalid_module_name_is_an_error(name):
    assert "/name" in errors_of(manifest(name=name))


@pytest.mark.parametrize("name", ["ab", "my-module", "a1-b2-c3", "x" * 64])
def test_valid_module_names_pass(name):
    assert errors_of(manifest(name=name)) == {}


@pytest.mark.parametrize(
    "version", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0+", "", " 1.0.0", "latest"]
)
def test_an_invalid_version_is_an_error(version):
    assert "/version" in errors_of(manifest(version=version))


def test_the_version_is_normalized_to_its_canonical_form():
    assert check_manifest(manifest(version="2.1.0-rc.1+build.5"))["version"] == "2.1.0-rc.1+build.5"


def test_an_unquoted_version_1_10_gets_a_quoting_hint():
    errors = errors_of(load_manifest_yaml(SPEC_EXAMPLE.replace("version: 1.0.0", "version: 1.10")))

    assert list(errors) == ["/version"]
    assert "quotes" in errors["/version"] and "1.1" in errors["/version"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", 42),
        ("author", True),
        ("name", 2024),
        ("display_name", 1.5),
        ("license", False),
    ],
)
def test_a_number_or_boolean_where_text_is_expected_gets_a_quoting_hint(field, value):
    errors = errors_of(manifest(**{field: value}))

    assert "quotes" in errors[f"/{field}"]


@pytest.mark.parametrize(
    ("changes", "pointer"),
    [
        ({"description": ""}, "/description"),
        ({"description": "   "}, "/description"),
        ({"description": "x" * 501}, "/description"),
        ({"author": " \t "}, "/author"),
        ({"author": ""}, "/author"),
        ({"display_name": "  "}, "/display_name"),
        ({"category": ["ops"]}, "/category"),
        ({"homepage": "ftp://example.com"}, "/homepage"),
        ({"homepage": "https://"}, "/homepage"),
        ({"homepage": "example.com"}, "/homepage"),
        ({"homepage": "https://example.com:port/"}, "/homepage"),
        ({"homepage": "https://exa mple.com/"}, "/homepage"),
        ({"tags": "erp"}, "/tags"),
        ({"tags": [f"t{i}" for i in range(11)]}, "/tags"),
        ({"tags": ["ERP"]}, "/tags/0"),
        ({"tags": ["erp", "-x"]}, "/tags/1"),
        ({"tags": ["x" * 33]}, "/tags/0"),
        ({"tags": ["erp", "crm", "erp"]}, "/tags/2"),
    ],
)
def test_text_fields_and_optional_fields_are_checked(changes, pointer):
    assert pointer in errors_of(manifest(**changes))


def test_optional_fields_in_their_expected_form_pass():
    data = manifest(
        display_name="My Module",
        license="MIT",
        homepage="https://example.com/my-module",
        category="operations",
        tags=["erp", "purchasing-2"],
    )

    assert errors_of(data) == {}


# --- Dependencies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dependencies", "pointer"),
    [
        ("abc", "/dependencies"),
        ([1], "/dependencies/0"),
        ([{"version": "*"}], "/dependencies/0/name"),
        ([{"name": "Bad_Name"}], "/dependencies/0/name"),
        ([{"name": "my-module"}], "/dependencies/0/name"),
        ([{"name": "a-b"}, {"name": "a-b"}], "/dependencies/1/name"),
        ([{"name": "a-b", "version": ">>1"}], "/dependencies/0/version"),
        ([{"name": "a-b", "version": "latest"}], "/dependencies/0/version"),
        ([{"name": "a-b", "version": 1.0}], "/dependencies/0/version"),
        ([{"name": "a-b", "type": "library"}], "/dependencies/0/type"),
        ([{"name": "a-b", "optional": "no"}], "/dependencies/0/optional"),
        ([{"name": "a-b", "verison": "1.0.0"}], "/dependencies/0/verison"),
    ],
)
def test_dependency_rules(dependencies, pointer):
    assert pointer in errors_of(manifest(dependencies=dependencies))


def test_a_dependency_version_read_as_a_number_gets_a_quoting_hint():
    errors = errors_of(manifest(dependencies=[{"name": "a-b", "version": 1.0}]))

    assert "quotes" in errors["/dependencies/0/version"]


def test_an_unknown_dependency_key_suggests_the_known_one():
    errors = errors_of(manifest(dependencies=[{"name": "a-b", "verison": "1.0.0"}]))

    assert "version" in errors["/dependencies/0/verison"]


def test_dependency_constraints_of_every_form_pass():
    constraints = [">=1.0.0", "^1.2", "~1.2.3", "1.x", "*", ">=1.0.0, <2.0.0", "^1 || ^2"]
    deps = [{"name": f"dep-{i}", "version": c} for i, c in enumerate(constraints)]
    deps.append({"name": "cache", "type": "service", "optional": True})

    assert errors_of(manifest(dependencies=deps)) == {}


# --- Entry points and endpoints --------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "my_module.main",
        "my module:main",
        "my_module.main:",
        ":main",
        "1mod:main",
        "my.class:run",
        "a..b:c",
        5,
    ],
)
def test_an_entry_point_that_is_not_a_dotted_path_is_an_error(target):
    assert "/entry_points/main" in errors_of(manifest(entry_points={"main": target}))


def test_entry_points_must_be_a_mapping():
    assert "/entry_points" in errors_of(manifest(entry_points=["my_module.main:main"]))


def endpoint(**changes) -> dict:
    return {"path": "/items", "method": "GET", "handler": "my_module.handlers:items", **changes}


@pytest.mark.parametrize(
    ("endpoints", "pointer"),
    [
        ([endpoint(method="FETCH")], "/endpoints/0/method"),
        ([endpoint(path="items")], "/endpoints/0/path"),
        ([endpoint(handler="my_module.handlers.items")], "/endpoints/0/handler"),
        ([endpoint(handler="my module:items")], "/endpoints/0/handler"),
        ([{"path": "/items", "method": "GET"}], "/endpoints/0/handler"),
        ([endpoint(auth=True)], "/endpoints/0/auth"),
        ([endpoint(), endpoint(handler="my_module.other:items")], "/endpoints/1"),
        ({"path": "/items"}, "/endpoints"),
    ],
)
def test_endpoint_rules(endpoints, pointer):
    assert pointer in errors_of(manifest(endpoints=endpoints))


def test_a_lowercase_endpoint_method_suggests_uppercase():
    errors = errors_of(manifest(endpoints=[endpoint(method="get")]))

    assert "GET" in errors["/endpoints/0/method"]


def test_the_same_path_with_another_method_is_fine():
    assert errors_of(manifest(endpoints=[endpoint(), endpoint(method="POST")])) == {}


# --- Health check ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("health_check", "pointer"),
    [
        ({"path": "health"}, "/health_check/path"),
        ({"interval_seconds": 30}, "/health_check/path"),
        ({"path": "/health", "interval_seconds": 5}, "/health_check/interval_seconds"),
        ({"path": "/health", "interval_seconds": 3601}, "/health_check/interval_seconds"),
        ({"path": "/health", "timeout_seconds": 0}, "/health_check/timeout_seconds"),
        ({"path": "/health", "timeout_seconds": 31}, "/health_check/timeout_seconds"),
        ({"path": "/health", "timeout_seconds": "5"}, "/health_check/timeout_seconds"),
        (
            {"path": "/health", "interval_seconds": 10, "timeout_seconds": 20},
            "/health_check/timeout_seconds",
        ),
        ({"path": "/health", "retries": 3}, "/health_check/retries"),
    ],
)
def test_health_check_rules(health_check, pointer):
    assert pointer in errors_of(manifest(health_check=health_check))


def test_a_health_check_in_range_passes():
    data = manifest(health_check={"path": "/health", "interval_seconds": 60, "timeout_seconds": 5})

    assert errors_of(data) == {}


# --- config_schema ---------------------------------------------------------------------------


def with_schema(schema) -> dict[str, str]:
    return errors_of(manifest(config_schema=schema))


@pytest.mark.parametrize(
    ("schema", "pointer"),
    [
        (5, "/config_schema"),
        (True, "/config_schema"),
        ({"type": "array"}, "/config_schema/type"),
        ({"properties": {}}, "/config_schema/type"),
        (
            {"type": "object", "properties": {"a": {"type": "strng"}}},
            "/config_schema/properties/a/type",
        ),
        (
            {"type": "object", "properties": {"a": {"minLength": -1}}},
            "/config_schema/properties/a/minLength",
        ),
        ({"type": "object", "required": "a"}, "/config_schema/required"),
        (
            {"type": "object", "$schema": "http://json-schema.org/draft-07/schema#"},
            "/config_schema/$schema",
        ),
    ],
)
def test_a_config_schema_that_is_not_a_valid_object_schema_is_an_error(schema, pointer):
    assert pointer in with_schema(schema)


def test_a_config_schema_3000_levels_deep_is_a_clean_422():
    data = load_manifest_json(manifest(config_schema=nested(3000)))

    with pytest.raises(ValidationFailed) as exc:
        check_manifest(data)

    assert list(exc.value.fields) == ["/config_schema"]


def test_a_config_schema_33_levels_deep_is_refused_and_32_accepted():
    assert "/config_schema" in with_schema(nested(33))
    assert with_schema(nested(32)) == {}


def test_a_config_schema_over_64_kib_is_an_error():
    assert "/config_schema" in with_schema({"type": "object", "description": "x" * (65 * 1024)})


@pytest.mark.parametrize(
    ("schema", "pointer"),
    [
        (
            {"type": "object", "properties": {"code": {"pattern": "(unclosed"}}},
            "/config_schema/properties/code/pattern",
        ),
        (
            {"type": "object", "patternProperties": {"[a-": {}}},
            "/config_schema/patternProperties/[a-",
        ),
        (
            {"type": "object", "properties": {"c": {"pattern": "(" * 5000}}},
            "/config_schema/properties/c/pattern",
        ),
        (
            {"type": "object", "$defs": {"c": {"pattern": "a{99999999999}"}}},
            "/config_schema/$defs/c/pattern",
        ),
    ],
)
def test_a_pattern_that_is_not_a_python_regex_is_an_error_at_its_pointer(schema, pointer):
    assert pointer in with_schema(schema)


@pytest.mark.parametrize(
    "ref", ["http://127.0.0.1:9/x.json", "file:///etc/passwd", "other.json#/a", "//evil.example/s"]
)
def test_a_ref_outside_the_schema_is_an_error(ref):
    errors = with_schema({"type": "object", "properties": {"a": {"$ref": ref}}})

    assert "/config_schema/properties/a/$ref" in errors


def test_a_dynamic_ref_outside_the_schema_is_an_error():
    errors = with_schema({"type": "object", "$dynamicRef": "https://example.com/s#meta"})

    assert "/config_schema/$dynamicRef" in errors


def test_a_local_ref_to_nothing_is_an_error_and_one_to_a_definition_passes():
    schema = {
        "type": "object",
        "$defs": {"money": {"type": "number"}},
        "properties": {"a": {"$ref": "#/$defs/money"}, "b": {"$ref": "#/$defs/missing"}},
    }

    assert list(with_schema(schema)) == ["/config_schema/properties/b/$ref"]


def test_a_local_ref_to_an_anchor_passes():
    schema = {
        "type": "object",
        "$defs": {"money": {"$anchor": "money", "type": "number"}},
        "properties": {"price": {"$ref": "#money"}},
    }

    assert with_schema(schema) == {}


def test_check_config_schema_reports_under_the_pointer_it_is_given():
    errors = check_config_schema({"type": "array"}, pointer="")

    assert [e["pointer"] for e in errors] == ["/type"]


# --- Weird input never raises ----------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"dependencies": "abc"},
        {"dependencies": [1, None, [], "x", {"name": None}]},
        {"config_schema": 5},
        {"config_schema": {"type": "object", "properties": []}},
        {"endpoints": [None, {"path": 1, "method": [], "handler": {}}]},
        {"health_check": {"path": "/h", "interval_seconds": 10**5000}},
        {
            "health_check": {
                "path": "/h",
                "interval_seconds": 10**300,
                "timeout_seconds": float("nan"),
            }
        },
        {"x-inf": float("inf"), "x-set": {1, 2}, "x-bytes": b"x"},
        {"x-deep": nested(5000)},
        {"tags": [[], {}, None, 10**400]},
        {"name": None, "version": None, "description": None, "author": None},
        {"entry_points": {"": None}},
        {5: "non-text key", "²": "a key that looks like a digit"},
    ],
)
def test_weird_input_gives_errors_and_never_raises(changes):
    _, errors = validate_manifest({"name": "my-module", **changes})

    assert errors and all(set(e) == {"pointer", "message"} for e in errors)


@pytest.mark.parametrize("data", [None, [], "name: x", 5])
def test_a_manifest_that_is_not_a_mapping_is_one_error_at_the_root(data):
    assert validate_manifest(data)[1][0]["pointer"] == ""


# --- Configurations --------------------------------------------------------------------------

CONFIG_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["api_key"],
    "properties": {
        "api_key": {"type": "string", "writeOnly": True},
        "currency": {"type": "string", "enum": ["EUR", "USD"], "default": "EUR"},
        "retries": {"type": "integer", "minimum": 0, "default": 3},
        "email": {"type": "string", "format": "email"},
        "site": {"type": "string", "format": "uri"},
        "starts": {"type": "string", "format": "date-time"},
        "smtp": {
            "type": "object",
            "required": ["host"],
            "properties": {
                "host": {"type": "string"},
                "port": {"type": "integer", "default": 25},
                "password": {"type": "string", "format": "password"},
            },
        },
        "logging": {
            "type": "object",
            "properties": {"level": {"type": "string", "default": "info"}},
        },
    },
}


def config_pointers(config) -> set[str]:
    return {error["pointer"] for error in validate_config(CONFIG_SCHEMA, config)[1]}


def test_defaults_are_applied_into_nested_objects_without_touching_the_input():
    config = {"api_key": "k", "smtp": {"host": "mail"}}

    result, errors = validate_config(CONFIG_SCHEMA, config)

    assert errors == []
    assert result["currency"] == "EUR" and result["retries"] == 3
    assert result["smtp"] == {"host": "mail", "port": 25}
    assert result["logging"] == {"level": "info"}
    assert config == {"api_key": "k", "smtp": {"host": "mail"}}


def test_type_errors_point_into_the_configuration_itself():
    assert config_pointers({"api_key": 5, "retries": "x", "smtp": {"host": "h", "port": "25"}}) == {
        "/api_key",
        "/retries",
        "/smtp/port",
    }


def test_a_missing_required_property_points_to_the_property():
    assert config_pointers({"smtp": {}}) == {"/api_key", "/smtp/host"}


def test_an_unknown_property_points_to_it_when_additional_properties_are_false():
    assert config_pointers({"api_key": "k", "extra": 1}) == {"/extra"}


@pytest.mark.parametrize(
    ("field", "value"), [("email", "not-an-email"), ("site", "not a uri"), ("starts", "yesterday")]
)
def test_formats_are_checked(field, value):
    assert config_pointers({"api_key": "k", field: value}) == {f"/{field}"}


def test_out_of_range_and_enum_values_are_errors():
    assert config_pointers({"api_key": "k", "retries": -1, "currency": "GBP"}) == {
        "/retries",
        "/currency",
    }


def test_configuration_errors_never_repeat_the_submitted_value():
    _, errors = validate_config(CONFIG_SCHEMA, {"api_key": 98765, "currency": "s3cr3t-value"})

    assert errors and not any("98765" in e["message"] or "s3cr3t" in e["message"] for e in errors)


def test_without_a_schema_a_configuration_must_be_an_object_and_comes_back_as_is():
    config = {"anything": [1, 2]}

    assert validate_config(None, config) == (config, [])
    assert validate_config(None, [1])[1][0]["pointer"] == ""
    assert validate_config(CONFIG_SCHEMA, "text")[1][0]["pointer"] == ""


def test_a_missing_configuration_counts_as_empty():
    assert [e["pointer"] for e in validate_config(CONFIG_SCHEMA, None)[1]] == ["/api_key"]


def test_config_validator_checks_formats():
    validator = config_validator({"type": "object", "properties": {"e": {"format": "email"}}})

    assert not validator.is_valid({"e": "nobody"})
    assert validator.is_valid({"e": "a@example.com"})


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
        {"type": "object", "properties": {"a": {"type": "no-such-type"}}},
        {"type": "object", "properties": {"a": {"pattern": "("}}},
        {"type": "object", "properties": {"a": {"minLength": "three"}}},
        {"type": "object", "properties": {"a": {"$ref": "file:///etc/passwd"}}},
        nested(3000),
        "not a schema",
    ],
)
def test_a_broken_schema_that_skipped_checking_gives_an_error_not_an_exception(schema):
    _, errors = validate_config(schema, {"a": "x"})

    assert [e["pointer"] for e in errors] == [""]


@pytest.fixture
def counting_server():
    """A real HTTP server on 127.0.0.1 that serves a schema and counts the requests it gets."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_ref_to_a_local_http_server_is_refused_and_never_fetched(counting_server):
    base, requests = counting_server
    schema = {"type": "object", "properties": {"a": {"$ref": f"{base}/x.json"}}}

    assert "/config_schema/properties/a/$ref" in with_schema(schema)
    result, errors = validate_config(schema, {"a": "x"})
    assert [e["pointer"] for e in errors] == [""]
    with pytest.raises(referencing.exceptions.Unresolvable):
        list(config_validator(schema).iter_errors({"a": "x"}))

    assert requests == []
    urllib.request.urlopen(f"{base}/x.json", timeout=5).read()  # the server did listen
    assert requests == ["/x.json"]


def test_a_ref_under_a_remote_id_is_not_fetched_either(counting_server):
    base, requests = counting_server
    schema = {"$id": f"{base}/root.json", "type": "object", "properties": {"a": {"$ref": "x.json"}}}

    assert validate_config(schema, {"a": "x"})[1]
    with pytest.raises(referencing.exceptions.Unresolvable):
        list(config_validator(schema).iter_errors({"a": "x"}))
    assert requests == []


# --- Secrets ---------------------------------------------------------------------------------

SECRET_SCHEMA = {
    "type": "object",
    "$defs": {"token": {"type": "string", "writeOnly": True}},
    "properties": {
        "api_key": {"type": "string", "writeOnly": True},
        "name": {"type": "string"},
        "smtp": {
            "type": "object",
            "properties": {"user": {"type": "string"}, "password": {"format": "password"}},
        },
        "webhook": {"$ref": "#/$defs/token"},
    },
}


def test_secret_fields_are_write_only_or_password_properties_at_any_depth():
    assert secret_fields(SECRET_SCHEMA) == {"/api_key", "/smtp/password", "/webhook"}


def test_secret_fields_of_a_schema_without_secrets_or_no_schema_are_empty():
    assert secret_fields(CONFIG_SCHEMA) == {"/api_key", "/smtp/password"}
    assert secret_fields({"type": "object"}) == set()
    assert secret_fields(None) == set()


def test_mask_secrets_replaces_present_secrets_on_a_copy():
    config = {"api_key": "k", "name": "shop", "smtp": {"user": "u", "password": "p"}}

    masked = mask_secrets(SECRET_SCHEMA, config)

    assert masked == {
        "api_key": "********",
        "name": "shop",
        "smtp": {"user": "u", "password": "********"},
    }
    assert config["api_key"] == "k" and config["smtp"]["password"] == "p"
    assert "webhook" not in masked


def test_block_nesting_is_capped_so_a_deep_document_is_refused_at_once():
    import time

    from tests.packaging import manifest_yaml

    text = manifest_yaml() + "x-deep:\n  " + "- " * 12000 + "1\n"
    started = time.monotonic()
    with pytest.raises(ValidationFailed) as exc:
        load_manifest_yaml(text)
    assert time.monotonic() - started < 0.5
    assert exc.value.errors[0]["pointer"] == "/x-deep"
    assert "nested more than" in exc.value.errors[0]["message"]
