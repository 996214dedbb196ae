"""inbound.attempts, failed_at, error: failed processing counted, and a dead letter after too many

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound') as batch:
        batch.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('error', sa.String(length=64), nullable=True))
        batch.create_index('ix_inbound_failed', ['failed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbound') as batch:
        batch.drop_index('ix_inbound_failed')
        batch.drop_column('error')
        batch.drop_column('failed_at')
        batch.drop_column('attempts')
