"""search document without stemming: every field in the 'simple' configuration

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 12:45:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# The document every field of which is now 'simple'; 0008 stores this same expression as
# the generated column search_vector.
SEARCH_DOCUMENT = (
    "(((setweight(to_tsvector('simple'::regconfig, name), 'A') || "
    "setweight(to_tsvector('simple'::regconfig, coalesce(display_name, '')), 'A')) || "
    "setweight(to_tsvector('simple'::regconfig, coalesce(CAST(tags AS TEXT), '')), 'B')) || "
    "setweight(to_tsvector('simple'::regconfig, description), 'C'))"
)
PREVIOUS = SEARCH_DOCUMENT.replace(
    "to_tsvector('simple'::regconfig, description)", "to_tsvector('english'::regconfig, description)"
)


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_modules_search")
    op.execute(f"CREATE INDEX ix_modules_search ON modules USING gin ({SEARCH_DOCUMENT})")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_modules_search")
    op.execute(f"CREATE INDEX ix_modules_search ON modules USING gin ({PREVIOUS})")
