"""money side tables, owner_hour; energy_day days are Astana days

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 07:47:00.539489

The money side's tables (controller/money/models.py) and `owner_hour` (controller/history.py). From this revision
on, `energy_day.day` is an Astana calendar day; rows written before it keep their UTC days (no schema change;
re-deriving them would read every device minute): docs/money.md, "Astana days".
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _absent(table: str) -> bool:
    """Tables made by create_all with the current models (databases adopted by controller.db) are kept."""
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _absent('money_chain'):
        op.create_table('money_chain',
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('prev_hash', AutoString(length=64), nullable=False),
        sa.Column('hash', AutoString(length=64), nullable=False),
        sa.Column('ts', UTCDateTime(), nullable=False),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('kind', AutoString(length=32), nullable=False),
        sa.Column('subject', AutoString(length=300), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('seq')
        )
    if _absent('money_chain_head'):
        op.create_table('money_chain_head',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('hash', AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
    if _absent('money_import'):
        op.create_table('money_import',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', AutoString(length=32), nullable=False),
        sa.Column('file_name', AutoString(length=300), nullable=False),
        sa.Column('sha256', AutoString(length=64), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('imported_at', UTCDateTime(), nullable=False),
        sa.Column('records', sa.Integer(), nullable=False),
        sa.Column('chain_seq', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('kind', 'sha256')
        )
        with op.batch_alter_table('money_import', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_money_import_kind'), ['kind'], unique=False)

    if _absent('money_report'):
        op.create_table('money_report',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', AutoString(length=32), nullable=False),
        sa.Column('licensee', AutoString(length=12), nullable=True),
        sa.Column('month', AutoString(length=7), nullable=False),
        sa.Column('sha256', AutoString(length=64), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('published_at', UTCDateTime(), nullable=False),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('chain_seq', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('money_report', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_money_report_licensee'), ['licensee'], unique=False)
            batch_op.create_index(batch_op.f('ix_money_report_month'), ['month'], unique=False)

    if _absent('owner_hour'):
        op.create_table('owner_hour',
        sa.Column('site', sa.String(length=64), nullable=False),
        sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
        sa.Column('owner', sa.String(length=128), nullable=False),
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('energy_kwh', sa.Float(), nullable=False),
        sa.Column('gap_s', sa.Float(), nullable=False),
        sa.Column('hash_ths_s', sa.Float(), nullable=False),
        sa.Column('device_minutes', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('site', 'hour', 'owner', 'source')
        )
        with op.batch_alter_table('owner_hour', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_owner_hour_hour'), ['hour'], unique=False)

    if _absent('money_input'):
        op.create_table('money_input',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', AutoString(length=32), nullable=False),
        sa.Column('key', AutoString(length=400), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('licensee', AutoString(length=12), nullable=True),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('import_id', sa.Integer(), nullable=False),
        sa.Column('line', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['import_id'], ['money_import.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('kind', 'key')
        )
        with op.batch_alter_table('money_input', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_money_input_day'), ['day'], unique=False)
            batch_op.create_index(batch_op.f('ix_money_input_import_id'), ['import_id'], unique=False)
            batch_op.create_index(batch_op.f('ix_money_input_kind'), ['kind'], unique=False)
            batch_op.create_index(batch_op.f('ix_money_input_licensee'), ['licensee'], unique=False)


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table('money_input', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_money_input_licensee'))
        batch_op.drop_index(batch_op.f('ix_money_input_kind'))
        batch_op.drop_index(batch_op.f('ix_money_input_import_id'))
        batch_op.drop_index(batch_op.f('ix_money_input_day'))

    op.drop_table('money_input')
    with op.batch_alter_table('owner_hour', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_owner_hour_hour'))

    op.drop_table('owner_hour')
    with op.batch_alter_table('money_report', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_money_report_month'))
        batch_op.drop_index(batch_op.f('ix_money_report_licensee'))

    op.drop_table('money_report')
    with op.batch_alter_table('money_import', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_money_import_kind'))

    op.drop_table('money_import')
    op.drop_table('money_chain_head')
    op.drop_table('money_chain')
    # ### end Alembic commands ###
