"""Sign-in and sign-out pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from portal.services.accounts import users
from portal.services.errors import TooManyRequests, Unauthorized
from portal.web.forms import ActionForm, LoginForm

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only a same-site relative path, so the sign-in page is never an open redirect: no
    scheme or host, no `//` or backslash (browsers read both as a host), and no control
    character or space (browsers drop tabs and newlines: `/\t/evil` becomes `//evil`; a
    newline in a header is an error). Anything else goes to the marketplace."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return url_for("main.index")
    if any(ch in "\\ " or ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return url_for("main.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return url_for("main.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    status, headers = 200, {}
    if form.validate_on_submit():
        try:
            user = users.authenticate(
                form.email.data, form.password.data, address=request.remote_addr
            )
        except (Unauthorized, TooManyRequests) as exc:
            form.form_errors.append(exc.message)
            status, headers = exc.status, exc.headers
        else:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")), code=303)
    elif request.method == "POST":
        status = 422
    return render_template("auth/login.html", form=form), status, headers


@bp.route("/logout", methods=["GET", "POST"])
@login_required
def logout():
    form = ActionForm()
    if request.method == "POST" and form.validate_on_submit():
        users.end_sessions(current_user)
        logout_user()
        flash("You are signed out.", "info")
        return redirect(url_for("auth.login"), code=303)
    return render_template("auth/logout.html", form=form)
