"""catalog generation: one counter every write to modules or companies moves, by trigger

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 15:00:00

Search results and filter menus are cached under the generation they were read at
(portal/services/catalog/cache.py). Triggers rather than application code move it, so
that no writer (a service, a migration, an operator's SQL) can leave a cache stale.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TABLES = ("modules", "companies")
BUMP = "UPDATE catalog_generation SET generation = generation + 1 WHERE id = 1"


def upgrade():
    op.create_table(
        'catalog_generation',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('generation', sa.BigInteger(), nullable=False),
        sa.CheckConstraint('id = 1', name=op.f('ck_catalog_generation_single_row')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_catalog_generation')),
    )
    op.execute("INSERT INTO catalog_generation (id, generation) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION bump_catalog_generation() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in TABLES:
            # Once per statement: a bulk change moves the counter once. BEFORE the
            # statement, so that a transaction locks the counter's row before any row of
            # the catalog: the same order everywhere, never a deadlock (two decisions on
            # one name each hold a release and want the other's under AFTER).
            op.execute(
                f"CREATE TRIGGER {table}_catalog_generation "
                f"BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_generation()"
            )
        return
    for table in TABLES:  # SQLite triggers are per row
        for action in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_catalog_generation_{action.lower()} "
                f"AFTER {action} ON {table} BEGIN {BUMP}; END"
            )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_catalog_generation ON {table}")
        op.execute("DROP FUNCTION IF EXISTS bump_catalog_generation()")
    else:
        for table in TABLES:
            for action in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_catalog_generation_{action}")
    op.drop_table('catalog_generation')
