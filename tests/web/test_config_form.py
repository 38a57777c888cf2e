"""Configuration forms generated from a release's config_schema (portal/web/config_form.py
and templates/installations/_config_fields.html): each widget, the way back from the form to
a typed configuration, secrets, the JSON editor for what a form cannot express, nesting."""

from __future__ import annotations

import re

import pytest
from flask import render_template_string
from werkzeug.datastructures import MultiDict

from portal.lib.config_schema import MASK, validate_config
from portal.web.installations.config_form import config_from_form, fields_for, parse_form

RENDER = (
    '{% from "installations/_config_fields.html" import render_field %}'
    '{% for f in fields %}{{ render_field(f, "/validate") }}{% endfor %}'
)

SCHEMA = {
    "type": "object",
    "required": ["company_name", "port", "api_key", "smtp"],
    "properties": {
        "company_name": {
            "type": "string",
            "title": "Company name",
            "description": "As printed on invoices",
            "maxLength": 80,
        },
        "contact": {"type": "string", "format": "email"},
        "api_key": {"type": "string", "writeOnly": True},
        "db_password": {"type": "string", "format": "password"},
        "currency": {"type": "string", "enum": ["EUR", "USD"], "default": "EUR"},
        "level": {"type": "integer", "enum": [1, 2, 3]},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 8080},
        "ratio": {"type": "number", "minimum": 0, "maximum": 1},
        "enabled": {"type": "boolean", "default": True},
        "tags": {"type": "array", "items": {"type": "string"}},
        "retries": {"type": "array", "items": {"type": "integer"}},
        "smtp": {
            "type": "object",
            "required": ["host"],
            "properties": {
                "host": {"type": "string"},
                "tls": {"type": "boolean", "default": False},
                "auth": {
                    "type": "object",
                    "properties": {"user": {"type": "string"}, "secret": {"writeOnly": True}},
                },
            },
        },
    },
    "additionalProperties": False,
}


def _render(app, fields) -> str:
    with app.test_request_context():
        return render_template_string(RENDER, fields=fields)


def _control(html: str, name: str) -> str:
    """The opening tag of the control posting `name` (not the checkbox's hidden twin)."""
    tags = re.findall(rf'<(?:input|select|textarea)\b[^>]*name="{re.escape(name)}"[^>]*>', html)
    tags = [t for t in tags if 'type="hidden"' not in t]
    assert len(tags) == 1, (name, tags)
    return tags[0]


def _post(fields) -> MultiDict:
    """What a browser posts for the fields as rendered (nothing changed by the person)."""
    data = MultiDict()
    for f in fields.walk():
        if f.kind == "object" or f.extra and not f.value:
            continue
        if f.kind == "checkbox":
            data.add(f.name, "")
            if f.value:
                data.add(f.name, "true")
        else:
            data.add(f.name, f.value)
    return data


def test_each_widget_kind_is_rendered_from_the_schema(app):
    kinds = {f.pointer: f.kind for f in fields_for(SCHEMA).walk()}
    assert kinds == {
        "/company_name": "text",
        "/contact": "text",
        "/api_key": "password",
        "/db_password": "password",
        "/currency": "select",
        "/level": "select",
        "/port": "number",
        "/ratio": "number",
        "/enabled": "checkbox",
        "/tags": "list",
        "/retries": "list",
        "/smtp": "object",
        "/smtp/host": "text",
        "/smtp/tls": "checkbox",
        "/smtp/auth": "object",
        "/smtp/auth/user": "text",
        "/smtp/auth/secret": "json",
    }
    html = _render(app, fields_for(SCHEMA))
    name = _control(html, "config/company_name")
    assert 'type="text"' in name and "required" in name and 'maxlength="80"' in name
    assert 'aria-describedby="cf-config-company_name-help cf-config-company_name-errors"' in name
    assert (
        '<small id="cf-config-company_name-help" class="muted help">As printed on invoices' in html
    )
    assert 'title="required">*</span>' in html
    assert 'type="email"' in _control(html, "config/contact")
    assert 'type="password"' in _control(html, "config/api_key")
    assert 'type="password"' in _control(html, "config/db_password")
    assert re.search(r'<option value="EUR" selected>EUR</option>', html)
    assert '<option value="2">2</option>' in html
    port = _control(html, "config/port")
    assert 'type="number"' in port and 'value="8080"' in port  # the default, prefilled
    assert 'min="1"' in port and 'max="65535"' in port and 'step="1"' in port
    assert 'step="any"' in _control(html, "config/ratio")
    enabled = _control(html, "config/enabled")
    assert 'type="checkbox"' in enabled and "checked" in enabled and "required" not in enabled
    assert '<input type="hidden" name="config/enabled" value="">' in html
    assert _control(html, "config/tags").startswith("<textarea")
    assert "One per line." in html
    assert re.search(r"<fieldset[^>]*>\s*<legend>smtp<span", html)
    # Every control validates as it changes.
    assert 'hx-post="/validate" hx-trigger="input changed delay:400ms"' in port
    assert 'hx-trigger="change"' in _control(html, "config/currency")
    assert 'hx-trigger="change"' in enabled


def test_the_form_round_trips_to_a_typed_configuration(app):
    config = {
        "company_name": "Acme",
        "contact": "ops@acme.test",
        "currency": "USD",
        "level": 2,
        "port": 9000,
        "ratio": 0.25,
        "enabled": False,
        "tags": ["a", "b c"],
        "retries": [1, 5, 30],
        "smtp": {"host": "mail.acme.test", "tls": True, "auth": {"user": "bot"}},
    }
    posted = _post(fields_for(SCHEMA, config))
    parsed, errors = parse_form(SCHEMA, posted)
    assert errors == []
    assert parsed == config
    assert config_from_form(SCHEMA, posted) == config


def test_blank_means_not_provided_and_the_validator_fills_defaults():
    form = MultiDict(
        {
            "config/company_name": "Acme",
            "config/port": "",
            "config/smtp/host": "h",
            "config/api_key": "k",
        }
    )
    parsed, errors = parse_form(SCHEMA, form)
    assert errors == [] and "port" not in parsed and "currency" not in parsed
    result, problems = validate_config(SCHEMA, parsed)
    assert problems == []
    assert result["port"] == 8080 and result["currency"] == "EUR"


def test_text_that_is_not_a_number_is_kept_for_the_validator_to_name():
    form = MultiDict({"config/port": "eighty", "config/ratio": "1e999", "config/retries": "1\nx"})
    parsed = config_from_form(SCHEMA, form)
    assert parsed["port"] == "eighty" and parsed["ratio"] == "1e999"
    assert parsed["retries"] == [1, "x"]
    _result, problems = validate_config(SCHEMA, parsed)
    pointers = {p["pointer"] for p in problems}
    assert {"/port", "/ratio", "/retries/1"} <= pointers


def test_repeated_inputs_also_make_a_list():
    form = MultiDict([("config/tags", "one"), ("config/tags", "two\nthree"), ("config/tags", " ")])
    assert config_from_form(SCHEMA, form)["tags"] == ["one", "two", "three"]


def test_secrets_are_never_rendered_and_blank_keeps_the_stored_one(app):
    stored = {"api_key": "sk-live-123", "db_password": "hunter2", "smtp": {"host": "h"}}
    stored["smtp"]["auth"] = {"secret": {"token": "deep-secret"}}
    fields = fields_for(SCHEMA, stored)
    html = _render(app, fields)
    for secret in ("sk-live-123", "hunter2", "deep-secret"):
        assert secret not in html
    api_key = _control(html, "config/api_key")
    assert 'value=""' in api_key and "required" not in api_key  # blank keeps it
    assert "set — leave blank to keep" in html
    deep = _control(html, "config/smtp/auth/secret")  # a secret the form shows as JSON
    assert deep.startswith("<textarea") and "required" not in deep
    assert html.count("set — leave blank to keep") == 3
    assert MASK not in html
    assert 'aria-describedby="cf-config-api_key-note cf-config-api_key-errors"' in api_key
    # Blank: kept as the service's mask for updates; for installs, simply not provided.
    posted = MultiDict({"config/api_key": "", "config/db_password": "new-one"})
    assert config_from_form(SCHEMA, posted, existing=stored)["api_key"] == MASK
    assert config_from_form(SCHEMA, posted, existing=stored)["db_password"] == "new-one"
    assert "api_key" not in config_from_form(SCHEMA, posted)
    blank_deep = MultiDict({"config/smtp/host": "h", "config/smtp/auth/secret": ""})
    kept = config_from_form(SCHEMA, blank_deep, existing=stored)
    assert kept["smtp"]["auth"] == {"secret": MASK}


def test_a_secret_default_is_not_prefilled(app):
    schema = {
        "type": "object",
        "properties": {"pin": {"type": "string", "writeOnly": True, "default": "0000"}},
    }
    html = _render(app, fields_for(schema))
    assert "0000" not in html


ODD = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "mode": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "address": {"$ref": "#/$defs/address"},
        "rules": {
            "type": "array",
            "items": {"type": "object", "properties": {"x": {"type": "string"}}},
        },
        "headers": {"type": "object", "patternProperties": {"^X-": {"type": "string"}}},
        "limits": {
            "type": "object",
            "properties": {"max": {"type": "integer"}},
            "additionalProperties": {"type": "integer"},
        },
        "either": {"type": ["string", "integer"]},
    },
    "$defs": {"address": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


def test_the_json_editor_appears_only_for_what_the_form_cannot_express(app):
    kinds = {(f.pointer, f.extra): f.kind for f in fields_for(ODD).walk()}
    assert kinds == {
        ("/name", False): "text",
        ("/mode", False): "json",
        ("/address", False): "json",
        ("/rules", False): "json",
        ("/headers", False): "json",  # only patternProperties: the whole object is JSON
        ("/limits", False): "object",
        ("/limits/max", False): "number",  # the known field stays a field
        ("/limits", True): "json",  # only the other keys are JSON
        ("/either", False): "json",
    }
    html = _render(app, fields_for(ODD))
    assert _control(html, "config/name").startswith("<input")
    assert 'class="json-editor"' in _control(html, "config/mode")
    assert 'class="json-editor"' in _control(html, "config/limits/~extra")
    assert "Other fields of “limits” (JSON object)" in html


def test_json_editors_parse_their_text_and_report_bad_json_at_their_field(app):
    form = MultiDict(
        {
            "config/mode": "{nope",
            "config/rules": '[{"x": "1"}]',
            "config/limits/max": "3",
            "config/limits/~extra": '{"burst": 9}',
            "config/headers": '{"X-Trace": "on"}',
        }
    )
    parsed, errors = parse_form(ODD, form)
    assert parsed["rules"] == [{"x": "1"}] and parsed["headers"] == {"X-Trace": "on"}
    assert parsed["limits"] == {"max": 3, "burst": 9}
    assert parsed["mode"] == "{nope"  # kept as text, so the validator sees something wrong
    assert [e["pointer"] for e in errors] == ["/mode"]
    form["config/limits/~extra"] = "[1]"
    parsed, errors = parse_form(ODD, form)
    assert [e["pointer"] for e in errors] == ["/mode", "/limits/~extra"]
    assert errors[0]["message"].startswith("is not valid JSON")
    fields = fields_for(ODD, parsed, errors)
    by_pointer = {(f.pointer, f.extra): f for f in fields.walk()}
    assert by_pointer[("/mode", False)].errors == [errors[0]]
    assert by_pointer[("/limits", True)].errors == [errors[1]]
    html = _render(app, fields)
    assert "mode is not valid JSON" in html
    assert "This must be a JSON object of the other fields" in html


def test_an_unknown_key_error_goes_to_the_extra_editor_of_its_object():
    fields = fields_for(ODD, {}, [{"pointer": "/limits/burst", "message": "must be at most 5"}])
    extra = next(f for f in fields.walk() if f.extra and f.pointer == "/limits")
    assert extra.errors == [{"pointer": "/limits/burst", "message": "must be at most 5"}]


def test_nested_objects_are_fieldsets_with_pointer_names_and_their_own_errors(app):
    errors = [
        {"pointer": "/smtp/host", "message": "is required"},
        {"pointer": "/smtp", "message": "must have at least 1 field(s)"},
        {"pointer": "/tags/1", "message": "must not be empty"},
        {"pointer": "", "message": "the module's configuration schema cannot be used"},
    ]
    fields = fields_for(SCHEMA, {}, errors)
    by_pointer = {f.pointer: f for f in fields.walk()}
    assert by_pointer["/smtp/host"].name == "config/smtp/host"
    assert by_pointer["/smtp/auth/user"].name == "config/smtp/auth/user"
    assert by_pointer["/smtp/host"].errors == [errors[0]]
    assert by_pointer["/smtp"].errors == [errors[1]]
    assert by_pointer["/tags"].errors == [errors[2]]
    assert fields.general == [errors[3]]
    html = _render(app, fields)
    host_slot = re.search(r'id="cf-config-smtp-host-errors"[^>]*>(.*?)</div>', html, re.S)
    assert "host is required" in host_slot.group(1)
    assert 'aria-invalid="true"' in _control(html, "config/smtp/host")
    assert "<code>/tags/1</code> must not be empty" in html


def test_an_optional_nested_object_left_alone_is_not_sent():
    schema = {
        "type": "object",
        "properties": {
            "proxy": {
                "type": "object",
                "required": ["url"],
                "properties": {"url": {"type": "string"}, "on": {"type": "boolean"}},
            }
        },
    }
    untouched = MultiDict([("config/proxy/url", ""), ("config/proxy/on", "")])
    assert config_from_form(schema, untouched) == {}
    touched = MultiDict(
        [("config/proxy/url", ""), ("config/proxy/on", ""), ("config/proxy/on", "true")]
    )
    assert config_from_form(schema, touched) == {"proxy": {"on": True}}
    _result, problems = validate_config(schema, config_from_form(schema, touched))
    assert problems == [{"pointer": "/proxy/url", "message": "is required"}]


@pytest.mark.parametrize("prefix", ["config", "deps/inventory"])
def test_input_names_and_ids_follow_the_prefix_and_stay_unique(prefix):
    schema = {
        "type": "object",
        "properties": {"a-b": {"type": "string"}, "a/b": {"type": "string"}},
    }
    fields = fields_for(schema, {}, [], prefix)
    assert [f.name for f in fields] == [f"{prefix}/a-b", f"{prefix}/a~1b"]
    assert len({f.id for f in fields}) == 2
    form = MultiDict({f"{prefix}/a-b": "1", f"{prefix}/a~1b": "2"})
    assert config_from_form(schema, form, prefix) == {"a-b": "1", "a/b": "2"}


def test_no_schema_means_no_fields():
    assert fields_for(None) == [] and config_from_form(None, MultiDict()) == {}
