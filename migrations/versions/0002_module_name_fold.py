"""module name fold

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 11:46:08.645602

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('modules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_fold', sa.String(length=64), nullable=True))
    # Same folding as portal.services.catalog.names.fold_name, for rows that exist already.
    op.execute(
        "UPDATE modules SET name_fold = replace(replace(replace(replace("
        "name, '-', ''), '0', 'o'), '1', 'l'), 'i', 'l')"
    )
    with op.batch_alter_table('modules', schema=None) as batch_op:
        batch_op.alter_column('name_fold', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index(batch_op.f('ix_modules_name_fold'), ['name_fold'], unique=False)


def downgrade():
    with op.batch_alter_table('modules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_modules_name_fold'))
        batch_op.drop_column('name_fold')
