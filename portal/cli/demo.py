"""Demo data for `flask seed-demo` and `make run`: safe to run again."""

from __future__ import annotations

import io
import zipfile

import sqlalchemy as sa
import yaml

from portal.extensions import db
from portal.models import Company, Installation, ModuleRelease, ReleaseStatus, Role, User
from portal.services.accounts import users

DEMO_PASSWORD = "demo-password"
DEMO_COMPANIES = [("acme", "Acme Corporation"), ("globex", "Globex Inc.")]
DEMO_USERS = [
    ("admin@example.com", Role.PLATFORM_ADMIN, None),
    ("dev@acme.example.com", Role.DEVELOPER, "acme"),
    ("admin@acme.example.com", Role.COMPANY_ADMIN, "acme"),
    ("dev@globex.example.com", Role.DEVELOPER, "globex"),
    ("admin@globex.example.com", Role.COMPANY_ADMIN, "globex"),
]


def _framework(version: str) -> dict:
    """The demo's shared base module, one manifest a version."""
    return {
        "name": "business-object-framework",
        "version": version,
        "display_name": "Business Object Framework",
        "description": "Shared business objects (parties, addresses, documents) that "
        "other modules build on.",
        "author": "Acme Platform Team",
        "category": "platform",
        "tags": ["core", "framework"],
    }


_CURRENCY = {"type": "string", "enum": ["EUR", "USD", "GBP"], "default": "EUR"}
# (publisher developer, manifest, final status) — approved ones form a living marketplace.
DEMO_RELEASES = [
    ("dev@acme.example.com", _framework("1.0.0"), ReleaseStatus.APPROVED),
    ("dev@acme.example.com", _framework("1.2.0"), ReleaseStatus.APPROVED),
    (
        "dev@acme.example.com",
        {
            "name": "inventory",
            "version": "1.4.0",
            "display_name": "Inventory",
            "description": "Stock levels, warehouses and stock moves.",
            "author": "Acme Logistics",
            "category": "operations",
            "tags": ["erp", "stock"],
            "dependencies": [{"name": "business-object-framework", "version": "^1.0.0"}],
            "config_schema": {
                "type": "object",
                "properties": {
                    "default_warehouse": {
                        "type": "string",
                        "description": "Code of the main warehouse",
                    },
                    "negative_stock": {"type": "boolean", "default": False},
                },
                "required": ["default_warehouse"],
            },
            "health_check": {"path": "/health", "interval_seconds": 60, "timeout_seconds": 3},
        },
        ReleaseStatus.APPROVED,
    ),
    (
        "dev@globex.example.com",
        {
            "name": "purchasing",
            "version": "1.2.0",
            "display_name": "Purchasing",
            "description": "Purchase orders, approvals and supplier invoices.",
            "author": "Globex Procurement",
            "category": "operations",
            "tags": ["erp", "procurement"],
            "dependencies": [
                {"name": "business-object-framework", "version": ">=1.0.0"},
                {"name": "inventory", "version": "^1.2"},
                {"name": "email-service", "version": "*", "type": "service"},
            ],
            "config_schema": {
                "type": "object",
                "properties": {
                    "currency": _CURRENCY,
                    "approval_limit": {"type": "number", "minimum": 0, "default": 1000},
                    "api_key": {
                        "type": "string",
                        "format": "password",
                        "description": "Key of the supplier portal",
                    },
                },
                "required": ["api_key"],
            },
        },
        ReleaseStatus.APPROVED,
    ),
    (
        "dev@globex.example.com",
        {
            "name": "reporting",
            "version": "0.9.0",
            "display_name": "Reporting",
            "description": "Dashboards and scheduled reports over every installed module.",
            "author": "Globex Analytics",
            "category": "analytics",
            "tags": ["reports", "dashboards"],
        },
        ReleaseStatus.PENDING,
    ),
]
# company, module, configuration
DEMO_INSTALLATIONS = [
    ("acme", "inventory", {"default_warehouse": "MAIN"}),
]


def _demo_package(manifest: dict) -> bytes:
    buf = io.BytesIO()
    folder = f"{manifest['name']}-{manifest['version']}"
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{folder}/module.yaml", yaml.safe_dump(manifest, sort_keys=False))
        module = manifest["name"].replace("-", "_")
        zf.writestr(f"{folder}/{module}/__init__.py", "")
        zf.writestr(f"{folder}/{module}/main.py", "def main():\n    return 'ok'\n")
    return buf.getvalue()


def _seed_release(email: str, manifest: dict, status: str) -> str | None:
    from portal.services.publishing.releases import package_store, publish_release
    from portal.services.publishing.storage import stream_to_temp
    from portal.services.publishing.submissions import PackageFile, Submission
    from portal.services.review.decisions import change_status

    exists = db.session.execute(
        sa.select(ModuleRelease.id).where(
            ModuleRelease.name == manifest["name"], ModuleRelease.version == manifest["version"]
        )
    ).first()
    if exists:
        return None
    data = _demo_package(manifest)
    path, digest, size = stream_to_temp(io.BytesIO(data), package_store(), max_bytes=len(data))
    sub = Submission(package=PackageFile(path, digest, size, "demo.zip"))
    release = publish_release(sub, actor=users.user_by_email(email))
    if status != ReleaseStatus.PENDING:
        change_status(release.id, status, actor=users.user_by_email("admin@example.com"))
    return f"release {manifest['name']} {manifest['version']} ({status})"


def _seed_installation(slug: str, module: str, config: dict) -> str | None:
    from portal.services.installations.installs import InstallRequest, install_module

    company = db.session.execute(sa.select(Company).where(Company.slug == slug)).scalar()
    exists = db.session.execute(
        sa.select(Installation.id).where(
            Installation.company_id == company.id, Installation.module_name == module
        )
    ).first()
    if exists:
        return None
    admin = db.session.execute(
        sa.select(User).where(User.company_id == company.id, User.role == Role.COMPANY_ADMIN)
    ).scalar()
    install_module(
        InstallRequest(module=module, config=config, install_dependencies=True), actor=admin
    )
    return f"installation of {module} for {slug}"


def seed() -> list[str]:
    """Create what is missing; returns what was done, a line each."""
    done = seed_accounts()
    for email, manifest, status in DEMO_RELEASES:
        if line := _seed_release(email, manifest, status):
            done.append(line)
    for slug, module, config in DEMO_INSTALLATIONS:
        if line := _seed_installation(slug, module, config):
            done.append(line)
    return done or ["demo data already present"]


def seed_accounts() -> list[str]:
    """The demo companies and accounts only (browser journeys bring their own modules)."""
    done = []
    for slug, name in DEMO_COMPANIES:
        if db.session.execute(sa.select(Company.id).where(Company.slug == slug)).first() is None:
            users.create_company(slug, name)
            done.append(f"company {slug}")
    for email, role, company in DEMO_USERS:
        if db.session.execute(sa.select(User.id).where(User.email == email)).first() is None:
            users.create_user(email, DEMO_PASSWORD, role, company)
            done.append(f"user {email} ({role})")
    return done
