"""installations

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 12:00:21.962891

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('installations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('module_name', sa.String(length=64), nullable=False),
    sa.Column('module_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('endpoint_url', sa.String(length=2048), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('health_status', sa.String(length=20), nullable=False),
    sa.Column('health_checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('health_latency_ms', sa.Integer(), nullable=True),
    sa.Column('health_message', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('uninstalled_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("health_status IN ('unknown', 'healthy', 'degraded', 'unhealthy')", name=op.f('ck_installations_health_known')),
    sa.CheckConstraint("status IN ('installed', 'uninstalled')", name=op.f('ck_installations_status_known')),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_installations_company_id_companies')),
    sa.ForeignKeyConstraint(['module_id'], ['modules.id'], name=op.f('fk_installations_module_id_modules')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_installations'))
    )
    with op.batch_alter_table('installations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_installations_company_id'), ['company_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_installations_module_id'), ['module_id'], unique=False)
        batch_op.create_index('uq_installations_active_module', ['company_id', 'module_name'], unique=True, sqlite_where=sa.text("status = 'installed'"), postgresql_where=sa.text("status = 'installed'"))

    op.create_table('installation_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('installation_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('module_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=128), nullable=False),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('endpoint_url', sa.String(length=2048), nullable=True),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_installation_revisions_actor_id_users')),
    sa.ForeignKeyConstraint(['installation_id'], ['installations.id'], name=op.f('fk_installation_revisions_installation_id_installations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['module_id'], ['modules.id'], name=op.f('fk_installation_revisions_module_id_modules')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_installation_revisions')),
    sa.UniqueConstraint('installation_id', 'revision', name='uq_installation_revisions_installation_revision')
    )
    with op.batch_alter_table('installation_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_installation_revisions_installation_id'), ['installation_id'], unique=False)


def downgrade():
    with op.batch_alter_table('installation_revisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_installation_revisions_installation_id'))

    op.drop_table('installation_revisions')
    with op.batch_alter_table('installations', schema=None) as batch_op:
        batch_op.drop_index('uq_installations_active_module', sqlite_where=sa.text("status = 'installed'"), postgresql_where=sa.text("status = 'installed'"))
        batch_op.drop_index(batch_op.f('ix_installations_module_id'))
        batch_op.drop_index(batch_op.f('ix_installations_company_id'))

    op.drop_table('installations')
