"""broadcasts.draft_key: one broadcast per console draft

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('broadcasts', sa.Column('draft_key', sa.String(length=64), nullable=True))
    op.create_index('ux_broadcasts_draft_key', 'broadcasts', ['draft_key'], unique=True)


def downgrade() -> None:
    op.drop_index('ux_broadcasts_draft_key', table_name='broadcasts')
    with op.batch_alter_table('broadcasts') as batch:
        batch.drop_column('draft_key')
