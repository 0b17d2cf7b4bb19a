"""controller lease (controller/lease/models.py)

Revision ID: 0006_lease
Revises: 0003_planner

The active/standby lease row: holder, epoch, expiry by the database's clock. A new table only; kept if a
create_all of the current models made it already.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision: str = '0006_lease'
down_revision: str | None = '0003_planner'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
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
