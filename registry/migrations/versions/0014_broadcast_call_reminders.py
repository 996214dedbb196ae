"""broadcasts.call_reminders: remind non-responders by phone call

Revision ID: 0014
Revises: 0016c
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0016c'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('broadcasts', sa.Column('call_reminders', sa.Boolean(), nullable=False,
                                          server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('broadcasts') as batch:
        batch.drop_column('call_reminders')
