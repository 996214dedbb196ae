"""CAP alerts received: each Alert, Update and Cancel, and the draft broadcast it made or changed

Revision ID: 0016c
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016c'
down_revision = '0013'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('cap_alerts',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('sender', sa.String(length=200), nullable=False),
    sa.Column('identifier', sa.String(length=200), nullable=False),
    sa.Column('sent', sa.String(length=40), nullable=False),
    sa.Column('msg_type', sa.String(length=16), nullable=False),
    sa.Column('headline', sa.Text(), nullable=True),
    sa.Column('broadcast_id', Id, nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('received_by', sa.String(length=64), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['broadcast_id'], ['broadcasts.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sender', 'identifier', name='uq_cap_alerts_message')
    )
    op.create_index('ix_cap_alerts_broadcast', 'cap_alerts', ['broadcast_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_cap_alerts_broadcast', table_name='cap_alerts')
    op.drop_table('cap_alerts')
