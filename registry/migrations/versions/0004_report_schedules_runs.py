"""report schedules and runs (scheduled stats exports)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('report_schedules',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('query', sa.JSON(), nullable=False),
    sa.Column('every_hours', sa.Integer(), nullable=False),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paused', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_report_schedules_due', 'report_schedules', ['next_run_at'], unique=False)
    op.create_table('report_runs',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('schedule_id', Id, nullable=True),
    sa.Column('scheduled_for', sa.DateTime(timezone=True), nullable=True),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('query', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('produced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('content', sa.Text(), nullable=True),
    sa.Column('content_type', sa.String(length=64), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['schedule_id'], ['report_schedules.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('schedule_id', 'scheduled_for', name='uq_report_runs_period')
    )
    op.create_index('ix_report_runs_schedule', 'report_runs', ['schedule_id', 'id'], unique=False)
    op.create_index('ix_report_runs_lease', 'report_runs', ['status', 'lease_until'], unique=False)
    op.create_index('ix_report_runs_started', 'report_runs', ['started_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_report_runs_started', table_name='report_runs')
    op.drop_index('ix_report_runs_lease', table_name='report_runs')
    op.drop_index('ix_report_runs_schedule', table_name='report_runs')
    op.drop_table('report_runs')
    op.drop_index('ix_report_schedules_due', table_name='report_schedules')
    op.drop_table('report_schedules')
