"""imports (lists brought in by an operator), invited registrants, how consent was given

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'imports',
        sa.Column('id', Id, primary_key=True, autoincrement=True),
        sa.Column('file_sha256', sa.String(64), nullable=False),
        sa.Column('region', sa.String(2), nullable=False),
        sa.Column('legal_basis', sa.String(24)),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('counts', sa.JSON, nullable=False),
        sa.Column('imported_by', sa.String(64), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True)),
        sa.UniqueConstraint('file_sha256', name='uq_imports_file'),
    )
    op.create_table(
        'import_rows',
        sa.Column('import_id', Id, sa.ForeignKey('imports.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('row_number', sa.Integer, primary_key=True, autoincrement=False),
        sa.Column('registrant_id', Id, sa.ForeignKey('registrants.id', ondelete='SET NULL')),
    )
    with op.batch_alter_table('registrants') as batch:
        batch.add_column(sa.Column('import_id', Id, sa.ForeignKey('imports.id', name='fk_registrants_import',
                                                                 ondelete='SET NULL')))
        batch.add_column(sa.Column('invited_at', sa.DateTime(timezone=True)))
        batch.add_column(sa.Column('legal_basis', sa.String(24)))
        batch.add_column(sa.Column('registered_by', sa.String(64)))
    op.create_index('ix_registrants_invited', 'registrants', ['step', 'invited_at'], unique=False)
    op.create_index('ix_registrants_registered_by', 'registrants', ['registered_by', 'created_at'], unique=False)
    with op.batch_alter_table('consents') as batch:
        batch.add_column(sa.Column('method', sa.String(24)))
        batch.add_column(sa.Column('recorded_by', sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table('consents') as batch:
        batch.drop_column('recorded_by')
        batch.drop_column('method')
    op.drop_index('ix_registrants_registered_by', table_name='registrants')
    op.drop_index('ix_registrants_invited', table_name='registrants')
    with op.batch_alter_table('registrants') as batch:
        batch.drop_column('registered_by')
        batch.drop_column('legal_basis')
        batch.drop_column('invited_at')
        batch.drop_column('import_id')
    op.drop_table('import_rows')
    op.drop_table('imports')
