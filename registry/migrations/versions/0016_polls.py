"""polls: a broadcast's multiple-choice question and each recipient's answer (an option number, no free text)

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('broadcasts', sa.Column('poll', sa.JSON(), nullable=True))
    op.add_column('broadcast_recipients', sa.Column('poll_answer', sa.Integer(), nullable=True))
    op.add_column('broadcast_recipients', sa.Column('poll_answered_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('broadcast_recipients') as batch:
        batch.drop_column('poll_answered_at')
        batch.drop_column('poll_answer')
    with op.batch_alter_table('broadcasts') as batch:
        batch.drop_column('poll')
