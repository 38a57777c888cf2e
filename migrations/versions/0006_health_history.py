"""health history

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 12:05:32.703920

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('installation_health_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('installation_id', sa.Integer(), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=False),
    sa.Column('to_status', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('message', sa.String(length=500), nullable=True),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['installation_id'], ['installations.id'], name=op.f('fk_installation_health_changes_installation_id_installations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_installation_health_changes'))
    )
    with op.batch_alter_table('installation_health_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_installation_health_changes_installation_id'), ['installation_id'], unique=False)

    with op.batch_alter_table('installations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_heartbeat_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('installations', schema=None) as batch_op:
        batch_op.drop_column('last_heartbeat_at')

    with op.batch_alter_table('installation_health_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_installation_health_changes_installation_id'))

    op.drop_table('installation_health_changes')
