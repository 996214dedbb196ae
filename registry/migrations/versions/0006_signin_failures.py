"""signin_failures: console sign-in limits shared by every web process

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('signin_failures',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_signin_failures_key', 'signin_failures', ['key', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_signin_failures_key', table_name='signin_failures')
    op.drop_table('signin_failures')
