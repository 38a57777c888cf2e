"""What the installation pages share: the blueprint, the URLs of one installation, who may
open them, and how a panel or a change is answered (htmx: in place; without: a page or 303)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, request, url_for
from flask_login import current_user

from portal.models import Company, Installation, InstallationStatus
from portal.services.accounts.access import may_install, visible_company
from portal.services.errors import Conflict, NotFound, ValidationFailed
from portal.services.installations import installs
from portal.services.installations.upgrades import upgrades_available
from portal.web import htmx
from portal.web.forms import ActionForm
from portal.web.pager import page_in_range, page_number, page_size

bp = Blueprint("installations", __name__)

ROOT = "/company/<slug>/installations"
ONE = ROOT + "/<int:installation_id>"
PER_PAGE = 50
PREVIOUS_PER_PAGE = 20
DEFAULT_POLL_SECONDS = 10


def require_installer() -> None:
    if not may_install(current_user):
        abort(403)


def poll_seconds() -> int:
    """How often the badges refresh: app config HEALTH_BADGE_POLL_SECONDS (default 10)."""
    value = current_app.config.get("HEALTH_BADGE_POLL_SECONDS", DEFAULT_POLL_SECONDS)
    return max(1, int(value))


def list_context(company: Company, *, focus_id: int | None = None, focus_count=False) -> dict:
    """What the list block needs: installed modules and previous ones, each paged on its
    own (`page`, `previous_page`: each pager keeps the other's page), and upgrades."""
    per_page = page_size(request.args, PER_PAGE)
    found = page_in_range(
        lambda n: installs.list_installations(
            actor=current_user, page=n, per_page=per_page, company=company.slug
        ),
        page_number(request.args),
    )
    previous = page_in_range(
        lambda n: installs.list_installations(
            actor=current_user,
            page=n,
            per_page=PREVIOUS_PER_PAGE,
            company=company.slug,
            status=InstallationStatus.UNINSTALLED,
        ),
        page_number(request.args, "previous_page"),
    )

    def url(installed: int, uninstalled: int) -> str:
        kept = {
            "page": installed if installed > 1 else None,
            "previous_page": uninstalled if uninstalled > 1 else None,
            "per_page": per_page if per_page != PER_PAGE else None,
        }
        return url_for("installations.index", slug=company.slug, **kept)

    return {
        "company": company,
        "installations": found,
        "previous": previous,
        "upgrades": upgrades_available(found.items),
        "page_url": lambda n: url(n, previous.page),
        "previous_page_url": lambda n: url(found.page, n),
        "poll_seconds": poll_seconds(),
        "focus_id": focus_id,
        "focus_count": focus_count,
    }


def owned(slug: str, installation_id: int) -> tuple[Company, Installation]:
    """The company and its installation. Another company's id raises the very NotFound an
    absent id raises (same message, same answer)."""
    require_installer()
    company = visible_company(current_user, slug)
    inst = installs.get_installation(installation_id, actor=current_user)
    if inst.company_id != company.id:
        raise NotFound("No such installation.")
    return company, inst


def require_active(inst: Installation) -> None:
    if inst.status != InstallationStatus.INSTALLED:
        raise Conflict(f"{inst.module_name} is uninstalled; install it again first.")


def panel(company: Company, template: str, *, status: int = 200, **context):
    """htmx: the panel alone; else the whole control room with the panel open."""
    page = {"company": company} if htmx.is_partial() else list_context(company)
    return htmx.render(
        "installations/index.html",
        block="panel",
        status=status,
        panel=template,
        action_form=ActionForm(),
        **{**page, **context},
    )


def done(company: Company, redirect_to: str, *, template: str | None = None, **context):
    """After a change: without htmx a 303 to `redirect_to` (the flash shown there); with
    htmx the panel (`template`, or closed) and the list out of band."""
    if not htmx.is_partial():
        return htmx.redirect(redirect_to)
    focus = {k: context.pop(k) for k in ("focus_id", "focus_count") if k in context}
    return htmx.render(
        "installations/_changed.html",
        block="changed",
        panel=template,
        action_form=ActionForm(),
        **list_context(company, **focus),
        **context,
    )


def posted_int(name: str) -> int | None:
    raw = (request.form.get(name) or "").strip()
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


def index_url(company: Company, inst: Installation | None = None) -> str:
    anchor = f"installation-{inst.id}" if inst is not None else None
    return url_for("installations.index", slug=company.slug, _anchor=anchor)


def endpoint_url() -> str | None:
    return (request.form.get("endpoint_url") or "").strip() or None


def endpoint_url_errors() -> list[dict]:
    try:
        installs.check_endpoint_url(endpoint_url())
    except ValidationFailed as exc:
        return exc.errors
    return []


def present(config, pointer: str) -> bool:
    """Whether the configuration has a value at the pointer (else the error is "missing")."""
    node = config
    for token in pointer.split("/")[1:] if pointer else []:
        token = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or token not in node:
            return isinstance(node, list)
        node = node[token]
    return True


def first_per_pointer(errors: list[dict]) -> list[dict]:
    seen, result = set(), []
    for err in errors:
        if err["pointer"] not in seen:
            seen.add(err["pointer"])
            result.append(err)
    return result
