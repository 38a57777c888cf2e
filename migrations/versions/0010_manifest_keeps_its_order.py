"""manifest keeps its order: modules.manifest as json, not jsonb, on PostgreSQL

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 23:50:00

JSONB stores object keys sorted by length, so a module's configuration fields came back in
PostgreSQL's order rather than the manifest's (the form, the module page and the API). The
json type keeps the text as written. Releases stored before this keep the order JSONB gave
them; every new or resubmitted manifest keeps its own. SQLite stores JSON text already.
"""
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE modules ALTER COLUMN manifest TYPE json USING manifest::json")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE modules ALTER COLUMN manifest TYPE jsonb USING manifest::jsonb")
