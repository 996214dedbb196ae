"""sources, signup_codes, registrants.source_id: outreach sources and the web sign-up's one-time codes

Revision ID: 0012
Revises: 0016b
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0016b'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('sources',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('area_id', sa.String(length=64), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code', name='uq_sources_code'),
    )
    op.create_table('signup_codes',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('ref', sa.String(length=32), nullable=False),
    sa.Column('bidx', sa.LargeBinary(length=32), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('code_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ref', name='uq_signup_codes_ref'),
    )
    op.create_index('ix_signup_codes_bidx', 'signup_codes', ['bidx', 'created_at'], unique=False)
    op.create_index('ix_signup_codes_client', 'signup_codes', ['client', 'created_at'], unique=False)
    with op.batch_alter_table('registrants') as batch:
        batch.add_column(sa.Column('source_id', Id, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('registrants') as batch:
        batch.drop_column('source_id')
    op.drop_index('ix_signup_codes_client', table_name='signup_codes')
    op.drop_index('ix_signup_codes_bidx', table_name='signup_codes')
    op.drop_table('signup_codes')
    op.drop_table('sources')
