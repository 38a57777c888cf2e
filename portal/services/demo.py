"""Demo data for `flask seed-demo` and `make run`: safe to run again."""

from __future__ import annotations

import sqlalchemy as sa

from portal.extensions import db
from portal.models import Company, User
from portal.services import accounts

DEMO_PASSWORD = "demo-password"
DEMO_COMPANIES = [("acme", "Acme Corporation"), ("globex", "Globex Inc.")]
DEMO_USERS = [
    ("admin@example.com", "platform_admin", None),
    ("dev@acme.example.com", "developer", "acme"),
    ("admin@acme.example.com", "company_admin", "acme"),
    ("dev@globex.example.com", "developer", "globex"),
    ("admin@globex.example.com", "company_admin", "globex"),
]


def seed() -> list[str]:
    """Create what is missing; returns what was done, a line each."""
    done = []
    for slug, name in DEMO_COMPANIES:
        if db.session.execute(sa.select(Company.id).where(Company.slug == slug)).first() is None:
            accounts.create_company(slug, name)
            done.append(f"company {slug}")
    for email, role, company in DEMO_USERS:
        if db.session.execute(sa.select(User.id).where(User.email == email)).first() is None:
            accounts.create_user(email, DEMO_PASSWORD, role, company)
            done.append(f"user {email} ({role})")
    return done or ["demo data already present"]
