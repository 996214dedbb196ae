"""send_rates: provider rate limits shared by every process (one row per limit, its next free time)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'send_rates',
        sa.Column('key', sa.String(length=120), nullable=False),
        sa.Column('tat', sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )


def downgrade() -> None:
    op.drop_table('send_rates')
