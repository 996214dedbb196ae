"""invitation_links: the personal link of each invitation, stored as the token's hash

Revision ID: 0017
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0014'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'invitation_links',
        sa.Column('id', Id, primary_key=True, autoincrement=True),
        sa.Column('token_hash', sa.LargeBinary(32), nullable=False),
        sa.Column('registrant_id', Id, sa.ForeignKey('registrants.id', name='fk_invitation_links_registrant',
                                                     ondelete='SET NULL')),
        sa.Column('identity_id', Id, sa.ForeignKey('identities.id', name='fk_invitation_links_identity',
                                                   ondelete='SET NULL')),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True)),
        sa.UniqueConstraint('token_hash', name='uq_invitation_links_token_hash'),
    )
    op.create_index('ix_invitation_links_expires', 'invitation_links', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_invitation_links_expires', table_name='invitation_links')
    op.drop_table('invitation_links')
