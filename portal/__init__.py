"""The Module Registry: the marketplace and lifecycle hub of XERPIUM's extension modules."""

from __future__ import annotations

import os

from flask import Flask, request
from flask_login import current_user

__version__ = "0.1.0"


def create_app(config=None) -> Flask:
    """Build the app; starts no threads and touches no database (CLI and tests rely on it)."""
    from portal.config import Config
    from portal.http.uploads import RegistryRequest

    config = config or Config()
    config.check()
    app = Flask(
        __name__,
        template_folder="../templates",
        static_folder="../static",
        instance_path=config.INSTANCE_PATH,
    )
    app.config.from_object(config)
    app.request_class = RegistryRequest
    app.json.sort_keys = False  # JSON keeps the order it was built in (a manifest's fields)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **_engine_options(app),
        **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
    }
    if app.config["TRUSTED_PROXY_COUNT"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["TRUSTED_PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_security_headers(app)
    register_id_bounds(app)
    register_template_helpers(app)
    register_commands(app)
    return app


def _engine_options(app: Flask) -> dict:
    from portal.database import engine_options

    return engine_options(app.config["SQLALCHEMY_DATABASE_URI"])


def register_extensions(app: Flask) -> None:
    from portal.database import configure_engine, include_object, render_item
    from portal.extensions import csrf, db, login_manager, migrate

    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(uri[len("sqlite:///") :]) or ".", exist_ok=True)
    os.makedirs(app.config["MODULE_STORAGE_PATH"], exist_ok=True)
    db.init_app(app)
    with app.app_context():
        configure_engine(app, db.engine)
    migrate.init_app(
        app,
        db,
        directory=os.path.join(app.root_path, "..", "migrations"),
        render_as_batch=True,
        include_object=include_object,
        render_item=render_item,
    )
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"

    @login_manager.user_loader
    def load_user(session_id: str):
        from portal.services.accounts.users import user_for_session

        return user_for_session(session_id)

    @login_manager.unauthorized_handler
    def unauthorized():
        from flask import redirect, url_for

        from portal.web import htmx
        from portal.web.errors import problem

        if request.path.startswith("/api/"):
            return problem(401, "Unauthorized", "Authentication is required.")
        target = url_for("auth.login", next=request.full_path.rstrip("?"))
        if htmx.is_htmx():
            return htmx.redirect(target)
        return redirect(target)


def register_blueprints(app: Flask) -> None:
    from portal.api import bp as api_bp
    from portal.extensions import csrf
    from portal.web import activity, review
    from portal.web.accounts import auth, tokens
    from portal.web.catalog import marketplace, modules
    from portal.web.installations import install as installations_pages
    from portal.web.platform import docs, ops
    from portal.web.publishing import publish

    app.register_blueprint(ops.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(marketplace.bp)
    app.register_blueprint(tokens.bp)
    app.register_blueprint(publish.bp)
    app.register_blueprint(modules.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(activity.bp)
    app.register_blueprint(installations_pages.bp)
    csrf.exempt(api_bp)
    app.register_blueprint(api_bp)


def register_error_handlers(app: Flask) -> None:
    from portal.web import errors

    errors.register(app)


def register_id_bounds(app: Flask) -> None:
    from portal.http import ids

    ids.register(app)


def register_security_headers(app: Flask) -> None:
    from portal.http import security

    security.register(app)


def register_template_helpers(app: Flask) -> None:
    from portal import models
    from portal.services.publishing.releases import is_resubmittable
    from portal.web.nav import navigation

    # The vocabularies by name (`release.status == ReleaseStatus.REJECTED`), and the rules
    # templates ask about (`release is resubmittable`), so pages spell neither by hand.
    for vocabulary in (
        models.Role,
        models.ReleaseStatus,
        models.Visibility,
        models.InstallationStatus,
        models.HealthStatus,
    ):
        app.jinja_env.globals[vocabulary.__name__] = vocabulary
    app.jinja_env.tests["resubmittable"] = is_resubmittable

    @app.context_processor
    def inject_navigation():
        if current_user.is_authenticated:
            return {"nav_items": navigation(current_user)}
        return {"nav_items": []}


def register_commands(app: Flask) -> None:
    from portal.cli import register

    register(app)
