"""Personal API tokens: create (shown once), list, revoke."""

from __future__ import annotations

from flask import Blueprint, flash, url_for
from flask_login import current_user, login_required

from portal.services.accounts import users
from portal.web import htmx
from portal.web.forms import ActionForm, TokenForm

bp = Blueprint("tokens", __name__)


def _page(form: TokenForm, new_token: str | None = None, status: int = 200):
    return htmx.render(
        "tokens/index.html",
        block="tokens",
        status=status,
        form=form,
        action_form=ActionForm(),
        tokens=users.list_api_tokens(current_user),
        new_token=new_token,
    )


@bp.get("/tokens")
@login_required
def index():
    return _page(TokenForm())


@bp.post("/tokens")
@login_required
def create():
    form = TokenForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    _token, plain = users.create_api_token(current_user, form.name.data)
    # The plain token is shown in this one answer only (no redirect: it is not stored).
    return _page(TokenForm(formdata=None), new_token=plain, status=201)


@bp.post("/tokens/<int:token_id>/revoke")
@login_required
def revoke(token_id: int):
    form = ActionForm()
    if form.validate_on_submit():
        users.revoke_api_token(token_id, actor=current_user)
        flash("Token revoked.", "info")
    if htmx.is_partial():
        return _page(TokenForm(formdata=None))
    return htmx.redirect(url_for("tokens.index"))
