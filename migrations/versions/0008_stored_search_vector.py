"""stored search vector, and search indexes over the latest releases only

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 14:45:00

The expression index of 0007 found candidates, but every match then computed its
document again (four to_tsvector calls) for the recheck and for ts_rank: a common term
cost 120+ ms. A generated column computes it once per write. The marketplace and every
latest=true list search only the newest release of each name, a fifth of the rows: the
partial indexes hold just those (bench/README.md, "Marketplace load").
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# The document of 0007, unchanged.
SEARCH_DOCUMENT = (
    "(((setweight(to_tsvector('simple'::regconfig, name), 'A') || "
    "setweight(to_tsvector('simple'::regconfig, coalesce(display_name, '')), 'A')) || "
    "setweight(to_tsvector('simple'::regconfig, coalesce(CAST(tags AS TEXT), '')), 'B')) || "
    "setweight(to_tsvector('simple'::regconfig, description), 'C'))"
)


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE modules ADD COLUMN search_vector tsvector "
        f"GENERATED ALWAYS AS ({SEARCH_DOCUMENT}) STORED"
    )
    op.execute("DROP INDEX IF EXISTS ix_modules_search")
    op.execute("CREATE INDEX ix_modules_search ON modules USING gin (search_vector)")
    op.execute(
        "CREATE INDEX ix_modules_latest_search ON modules USING gin (search_vector) "
        "WHERE is_latest"
    )
    op.execute(
        "CREATE INDEX ix_modules_latest_name_trgm ON modules "
        "USING gin (name gin_trgm_ops) WHERE is_latest"
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_modules_latest_name_trgm")
    op.execute("DROP INDEX IF EXISTS ix_modules_latest_search")
    op.execute("DROP INDEX IF EXISTS ix_modules_search")
    op.execute("ALTER TABLE modules DROP COLUMN search_vector")
    op.execute(f"CREATE INDEX ix_modules_search ON modules USING gin ({SEARCH_DOCUMENT})")
