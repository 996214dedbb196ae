"""audit_log.key_id and audit_chain: a keyed (HMAC) chain from the next entry on

Entries written before this revision keep their plain SHA-256 hashes and still verify;
audit_chain.keyed_from marks the first entry that must carry a key.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.add_column('audit_log', sa.Column('key_id', sa.String(length=32), nullable=True))
    chain = op.create_table('audit_chain',
                            sa.Column('keyed_from', Id, autoincrement=False, nullable=False),
                            sa.PrimaryKeyConstraint('keyed_from'))
    last = op.get_bind().execute(sa.text('SELECT max(seq) FROM audit_log')).scalar()
    op.bulk_insert(chain, [{'keyed_from': (last or 0) + 1}])


def downgrade() -> None:
    op.drop_table('audit_chain')
    with op.batch_alter_table('audit_log') as batch:
        batch.drop_column('key_id')
