"""controller lease (controller/lease/models.py) and ledger gaps (controller/quota/gaps.py)

Revision ID: 0008_lease
Revises: 0007_placement

The active/standby lease row (holder, epoch, expiry by the database's clock) and the ledger's flagged gaps. New
tables only; each kept if a create_all of the current models made it already.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision: str = '0008_lease'
down_revision: str | None = '0007_placement'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table('quota_ledger_gap'):
        op.create_table('quota_ledger_gap',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('start', UTCDateTime(), nullable=False),
        sa.Column('end', UTCDateTime(), nullable=False),
        sa.Column('reason', AutoString(length=200), nullable=False),
        sa.Column('detected_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('quota_ledger_gap', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_quota_ledger_gap_site'), ['site'], unique=False)
            batch_op.create_index(batch_op.f('ix_quota_ledger_gap_start'), ['start'], unique=False)
    if sa.inspect(op.get_bind()).has_table('controller_lease'):
        return
    op.create_table('controller_lease',
    sa.Column('name', AutoString(length=64), nullable=False),
    sa.Column('holder', AutoString(length=200), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('expires_at_s', sa.Float(), nullable=False),
    sa.Column('renewed_at_s', sa.Float(), nullable=False),
    sa.Column('acquired_at_s', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('controller_lease')
    op.drop_table('quota_ledger_gap')
