"""The only module that reads or writes HX-* headers (htmx 2.0)."""

from __future__ import annotations

from flask import Response, get_flashed_messages, make_response, render_template, request
from flask import redirect as flask_redirect
from jinja2 import Template


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def is_partial() -> bool:
    """True for an htmx request that swaps a fragment (not boosted, not a history restore)."""
    return (
        is_htmx()
        and request.headers.get("HX-Boosted") != "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def render(template_name: str, *, block: str | None = None, status: int = 200, **context):
    """The full page, or only `block` of it when htmx asks for a fragment."""
    if block and is_partial():
        from flask import current_app

        env = current_app.jinja_env
        template: Template = env.get_template(template_name)
        ctx = template.new_context(_template_context(context))
        body = "".join(template.blocks[block](ctx))
        body += _flash_out_of_band()
    else:
        body = render_template(template_name, **context)
    resp = make_response(body, status)
    resp.vary.add("HX-Request")
    return resp


def _flash_out_of_band() -> str:
    """Messages flashed while answering a fragment go to #flash in the same response."""
    messages = get_flashed_messages(with_categories=True)
    if not messages:
        return ""
    items = "".join(
        render_template("_flash.html", category=category, message=message)
        for category, message in messages
    )
    return f'<div id="flash" class="flash-area" hx-swap-oob="innerHTML">{items}</div>'


def _template_context(context: dict) -> dict:
    from flask import current_app

    merged = {}
    current_app.update_template_context(merged)
    merged.update(context)
    return merged


def redirect(url: str) -> Response:
    """htmx follows HX-Redirect; a plain browser gets a 303 (POST → GET)."""
    if is_htmx():
        resp = make_response("", 200)
        resp.headers["HX-Redirect"] = url
        return resp
    return flask_redirect(url, code=303)


def retarget(resp: Response, target: str, swap: str = "innerHTML") -> Response:
    resp.headers["HX-Retarget"] = target
    resp.headers["HX-Reswap"] = swap
    return resp
