"""Command-line interface: flask --app wsgi <command>."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from portal.models import Role
from portal.services.errors import DomainError

companies_cli = AppGroup("companies", help="Manage companies.")
users_cli = AppGroup("users", help="Manage users.")
tokens_cli = AppGroup("tokens", help="Manage personal API tokens.")


def _fail(exc: DomainError) -> None:
    details = "; ".join(f"{e['pointer']}: {e['message']}" for e in exc.errors)
    raise click.ClickException(f"{exc.message} {details}".strip())


@companies_cli.command("create")
@click.argument("slug")
@click.option("--name", required=True)
def create_company(slug: str, name: str) -> None:
    """Add a company."""
    from portal.services.accounts import users

    try:
        company = users.create_company(slug, name)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"Created company {company.slug} ({company.name}).")


@users_cli.command("create")
@click.argument("email")
@click.option("--password", required=True)
@click.option("--role", required=True, type=click.Choice(Role.values()))
@click.option("--company", "company_slug", default=None)
def create_user(email: str, password: str, role: str, company_slug: str | None) -> None:
    """Add a user."""
    from portal.services.accounts import users

    try:
        user = users.create_user(email, password, role, company_slug)
    except DomainError as exc:
        _fail(exc)
    click.echo(f"Created {user.role} {user.email}.")


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", default="CLI token")
def create_token(email: str, name: str) -> None:
    """Print a new personal API token once."""
    from portal.services.accounts import users

    try:
        user = users.user_by_email(email)
        _token, plain = users.create_api_token(user, name)
    except DomainError as exc:
        _fail(exc)
    click.echo(plain)


@click.command("seed-demo")
@with_appcontext
def seed_demo() -> None:
    """Idempotent demo companies, users, modules and installations."""
    from portal.cli.demo import DEMO_PASSWORD, seed

    for line in seed():
        click.echo(line)
    click.echo(f"Demo password for every demo account: {DEMO_PASSWORD}")


@click.command("worker")
@with_appcontext
@click.option("--once", is_flag=True, help="Do one round of every job, then exit.")
def worker(once: bool) -> None:
    """Run the worker's jobs (event relay, health checks, service registry) until stopped."""
    from portal.worker import run_worker

    run_worker(once=once)


storage_cli = AppGroup("storage", help="The package store.")


@storage_cli.command("sweep")
@click.option(
    "--min-age",
    type=float,
    default=None,
    help="Seconds a file must have existed (default: one hour).",
)
def storage_sweep(min_age: float | None) -> None:
    """Remove stored packages no release names, and temp uploads left by a crash."""
    from portal.services.publishing.sweep import DEFAULT_MIN_AGE_SECONDS, sweep_orphan_packages

    report = sweep_orphan_packages(DEFAULT_MIN_AGE_SECONDS if min_age is None else min_age)
    click.echo(
        f"removed {report.packages_removed} orphan packages, {report.temp_files_removed} temp files"
    )


def register(app: Flask) -> None:
    from portal.cli.modules import modules_cli

    for command in (
        companies_cli,
        users_cli,
        tokens_cli,
        modules_cli,
        storage_cli,
        seed_demo,
        worker,
    ):
        app.cli.add_command(command)
