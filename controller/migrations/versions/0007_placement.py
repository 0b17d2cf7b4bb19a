"""rack view tables (controller/dashboard/placement.py)

Revision ID: 0007_placement
Revises: 0005_registry_link
Create Date: 2026-12-02 13:40:00

Where each machine sits (`device_placement`: hall, rack, slot from the agents' config) and the capacity of each
rack's PDU feeds (`rack_feed`, entered by an operator). New tables only; tables a create_all of the current models
made already (databases adopted by controller.db) are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision: str = '0007_placement'
down_revision: str | None = '0005_registry_link'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _absent(table: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _absent('device_placement'):
        op.create_table('device_placement',
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('device_id', AutoString(length=128), nullable=False),
        sa.Column('hall', AutoString(length=64), nullable=True),
        sa.Column('rack', AutoString(length=64), nullable=True),
        sa.Column('slot', sa.Integer(), nullable=True),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('site', 'device_id')
        )
        with op.batch_alter_table('device_placement', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_device_placement_rack'), ['rack'], unique=False)

    if _absent('rack_feed'):
        op.create_table('rack_feed',
        sa.Column('site', AutoString(length=64), nullable=False),
        sa.Column('rack', AutoString(length=64), nullable=False),
        sa.Column('feed', AutoString(length=32), nullable=False),
        sa.Column('capacity_w', sa.Float(), nullable=False),
        sa.Column('actor', AutoString(length=200), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('site', 'rack', 'feed')
        )


def downgrade() -> None:
    op.drop_table('rack_feed')
    with op.batch_alter_table('device_placement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_placement_rack'))
    op.drop_table('device_placement')
