"""search indexes (PostgreSQL only: weighted full text and trigram similarity on names)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 12:00:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# The search queries' document expression when this revision was written (0008 replaced it
# by a stored column): the planner only uses the index when the query's expression matches.
SEARCH_DOCUMENT = (
    "(((setweight(to_tsvector('simple'::regconfig, name), 'A') || "
    "setweight(to_tsvector('simple'::regconfig, coalesce(display_name, '')), 'A')) || "
    "setweight(to_tsvector('simple'::regconfig, coalesce(CAST(tags AS TEXT), '')), 'B')) || "
    "setweight(to_tsvector('english'::regconfig, description), 'C'))"
)


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(f"CREATE INDEX ix_modules_search ON modules USING gin ({SEARCH_DOCUMENT})")
    op.create_index(
        'ix_modules_name_trgm', 'modules', ['name'], unique=False,
        postgresql_using='gin', postgresql_ops={'name': 'gin_trgm_ops'},
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index('ix_modules_name_trgm', table_name='modules')
    op.drop_index('ix_modules_search', table_name='modules')
