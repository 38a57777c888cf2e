"""latest release flag

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 11:52:39.161770

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('modules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prerelease', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('is_latest', sa.Boolean(), server_default=sa.false(), nullable=False))
    # Release keys end with '~' (portal/versions.py); pre-release keys never do.
    op.execute("UPDATE modules SET prerelease = (version_key NOT LIKE '%~')")
    with op.batch_alter_table('modules', schema=None) as batch_op:
        batch_op.create_index('ix_modules_latest_name', ['name'], unique=False, sqlite_where=sa.text('is_latest'), postgresql_where=sa.text('is_latest'))


def downgrade():
    with op.batch_alter_table('modules', schema=None) as batch_op:
        batch_op.drop_index('ix_modules_latest_name', sqlite_where=sa.text('is_latest'), postgresql_where=sa.text('is_latest'))
        batch_op.drop_column('is_latest')
        batch_op.drop_column('prerelease')
