"""planner tables (controller/planner/models.py)

Revision ID: 0003_planner
Revises: 0002
Create Date: 2026-12-02 07:44:26.862623

The day-ahead bid planner's tables: imported series (hashprice, USD rate), imports, published auction results,
bid sets frozen for submission, and each site's award. New tables only: nothing existing is touched; tables
that a create_all of the current models made already (databases adopted by controller.db) are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision: str = '0003_planner'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _absent(table: str) -> bool:
    """Tables made by create_all with the current models (databases adopted by controller.db) are kept."""
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _absent('planner_award'):
        op.create_table('planner_award',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('import_id', sa.Integer(), nullable=False),
        sa.Column('bid_set_id', sa.Integer(), nullable=True),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('zone', AutoString(length=64), nullable=False),
        sa.Column('hour', sa.Integer(), nullable=False),
        sa.Column('mwh', sa.Float(), nullable=False),
        sa.Column('cost_kzt', sa.Float(), nullable=False),
        sa.Column('note', AutoString(length=200), nullable=False),
        sa.Column('schedule_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('planner_award', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_planner_award_day'), ['day'], unique=False)
            batch_op.create_index(batch_op.f('ix_planner_award_import_id'), ['import_id'], unique=False)
            batch_op.create_index(batch_op.f('ix_planner_award_site'), ['site'], unique=False)

    if _absent('planner_bid_set'):
        op.create_table('planner_bid_set',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('steps_json', AutoString(), nullable=False),
        sa.Column('summary_json', AutoString(), nullable=False),
        sa.Column('inputs_json', AutoString(), nullable=False),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('planner_bid_set', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_planner_bid_set_day'), ['day'], unique=False)

    if _absent('planner_import'):
        op.create_table('planner_import',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', AutoString(length=16), nullable=False),
        sa.Column('day', sa.Date(), nullable=True),
        sa.Column('filename', AutoString(length=200), nullable=True),
        sa.Column('sha256', AutoString(length=64), nullable=False),
        sa.Column('rows', sa.Integer(), nullable=False),
        sa.Column('outcome_json', AutoString(), nullable=False),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('source', AutoString(length=16), nullable=False),
        sa.Column('received_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('planner_import', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_planner_import_day'), ['day'], unique=False)

    if _absent('planner_result'):
        op.create_table('planner_result',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('import_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('zone', AutoString(length=64), nullable=False),
        sa.Column('hour', sa.Integer(), nullable=False),
        sa.Column('offered_mwh', sa.Float(), nullable=False),
        sa.Column('sold_mwh', sa.Float(), nullable=True),
        sa.Column('clearing_kzt_per_mwh', sa.Float(), nullable=True),
        sa.Column('won_mwh', sa.Float(), nullable=False),
        sa.Column('paid_kzt', sa.Float(), nullable=True),
        sa.Column('replaced_by', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('planner_result', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_planner_result_day'), ['day'], unique=False)
            batch_op.create_index(batch_op.f('ix_planner_result_import_id'), ['import_id'], unique=False)

    if _absent('planner_series'):
        op.create_table('planner_series',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', AutoString(length=16), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('source', AutoString(length=200), nullable=False),
        sa.Column('inputs_json', AutoString(), nullable=True),
        sa.Column('replaced_by', sa.Integer(), nullable=True),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('received_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('planner_series', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_planner_series_day'), ['day'], unique=False)
            batch_op.create_index(batch_op.f('ix_planner_series_kind'), ['kind'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('planner_series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_planner_series_kind'))
        batch_op.drop_index(batch_op.f('ix_planner_series_day'))

    op.drop_table('planner_series')
    with op.batch_alter_table('planner_result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_planner_result_import_id'))
        batch_op.drop_index(batch_op.f('ix_planner_result_day'))

    op.drop_table('planner_result')
    with op.batch_alter_table('planner_import', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_planner_import_day'))

    op.drop_table('planner_import')
    with op.batch_alter_table('planner_bid_set', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_planner_bid_set_day'))

    op.drop_table('planner_bid_set')
    with op.batch_alter_table('planner_award', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_planner_award_site'))
        batch_op.drop_index(batch_op.f('ix_planner_award_import_id'))
        batch_op.drop_index(batch_op.f('ix_planner_award_day'))

    op.drop_table('planner_award')
