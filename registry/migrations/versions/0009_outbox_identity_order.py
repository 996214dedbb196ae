"""outbox(identity_id, status): a claim skips a message while an earlier one to the same person is pending

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_outbox_identity', 'outbox', ['identity_id', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_identity', table_name='outbox')
